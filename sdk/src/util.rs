//! Small helpers every driver needs: pairs, JSON texts for `vif-details` (both ways), Neutron's
//! spellings of the contract's enums, and checks of the inputs drivers rely on (MAC, MTU,
//! interface names, segment types, the binding a plug refers to).

use crate::names;
use crate::types::{
    Agent, DriverError, Network, NetworkType, Pairs, Port, PortContext, Segment, VnicType,
};

/// The value for `key` in a list of pairs.
pub fn pairs_get<'a>(pairs: &'a Pairs, key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A pair `(key, value)` of owned strings.
pub fn pair(key: &str, value: impl Into<String>) -> (String, String) {
    (key.to_string(), value.into())
}

/// A JSON string literal (for `vif-details` values).
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON boolean literal.
pub fn json_bool(b: bool) -> String {
    if b { "true" } else { "false" }.to_string()
}

/// The string a JSON string literal stands for (`"\"br100\""` → `br100`), the inverse of
/// [`json_str`]; `None` when `text` (surrounding white space aside) is not one.
pub fn json_parse_str(text: &str) -> Option<String> {
    let inner = text.trim().strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(match chars.next()? {
                '"' => '"',
                '\\' => '\\',
                '/' => '/',
                'b' => '\u{8}',
                'f' => '\u{c}',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    if hex.len() != 4 {
                        return None;
                    }
                    char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
                }
                _ => return None,
            }),
            '"' => return None,
            c if u32::from(c) < 0x20 => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// The boolean a JSON literal stands for, the inverse of [`json_bool`]; `None` when `text`
/// (surrounding white space aside) is not `true` or `false`.
pub fn json_parse_bool(text: &str) -> Option<bool> {
    match text.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// The agents of one type among those on the host.
pub fn agents_of_type<'a>(
    agents: &'a [Agent],
    agent_type: &'a str,
) -> impl Iterator<Item = &'a Agent> {
    agents.iter().filter(move |a| a.agent_type == agent_type)
}

/// Neutron's spelling of a network type (`provider:network_type`).
pub fn network_type_name(network_type: NetworkType) -> &'static str {
    match network_type {
        NetworkType::Flat => "flat",
        NetworkType::Vlan => "vlan",
        NetworkType::Vxlan => "vxlan",
        NetworkType::Gre => "gre",
        NetworkType::Geneve => "geneve",
        NetworkType::Local => "local",
    }
}

/// Neutron's spelling of a vNIC type (`binding:vnic_type`).
pub fn vnic_type_name(vnic_type: VnicType) -> &'static str {
    match vnic_type {
        VnicType::Normal => "normal",
        VnicType::Direct => "direct",
        VnicType::Macvtap => "macvtap",
        VnicType::Baremetal => "baremetal",
        VnicType::DirectPhysical => "direct-physical",
        VnicType::VirtioForwarder => "virtio-forwarder",
        VnicType::SmartNic => "smart-nic",
        VnicType::Vdpa => "vdpa",
        VnicType::AcceleratorDirect => "accelerator-direct",
        VnicType::AcceleratorDirectPhysical => "accelerator-direct-physical",
        VnicType::RemoteManaged => "remote-managed",
    }
}

/// True when `mac` is six colon-separated pairs of hex digits (`fa:16:3e:12:34:56`, either
/// case).
pub fn valid_mac(mac: &str) -> bool {
    let mut octets = 0;
    for octet in mac.split(':') {
        if octet.len() != 2 || !octet.bytes().all(|b| b.is_ascii_hexdigit()) {
            return false;
        }
        octets += 1;
    }
    octets == 6
}

/// True when the kernel accepts `mtu` on a link (68-65535; the host refuses a plan with any
/// other).
pub fn valid_mtu(mtu: u32) -> bool {
    (68..=65535).contains(&mtu)
}

/// The port's MAC address, when it is one ([`valid_mac`]); otherwise the input is malformed.
pub fn port_mac(port: &Port) -> Result<&str, DriverError> {
    let mac = port.mac_address.as_str();
    if valid_mac(mac) {
        Ok(mac)
    } else {
        Err(DriverError::InvalidInput(format!(
            "port {} has no usable MAC address: {mac:?}",
            port.id
        )))
    }
}

/// The segment's MTU, else the network's; `None` when neither is set (0). An MTU the kernel
/// would refuse ([`valid_mtu`]) is malformed input.
pub fn segment_mtu(network: &Network, segment: &Segment) -> Result<Option<u32>, DriverError> {
    match [segment.mtu, network.mtu].into_iter().find(|mtu| *mtu > 0) {
        Some(mtu) if !valid_mtu(mtu) => Err(DriverError::InvalidInput(format!(
            "MTU {mtu} of segment {} is outside 68-65535",
            segment.id
        ))),
        mtu => Ok(mtu),
    }
}

/// `name`, when it is a usable interface name ([`names::is_valid_ifname`]); otherwise the input
/// is malformed, and the error says which device (`what`) it was meant for.
pub fn checked_ifname<S: AsRef<str>>(name: S, what: &str) -> Result<S, DriverError> {
    if names::is_valid_ifname(name.as_ref()) {
        Ok(name)
    } else {
        Err(DriverError::InvalidInput(format!(
            "{what} {:?} is not a valid interface name",
            name.as_ref()
        )))
    }
}

/// `Ok` when `segment` is of one of `network_types`, the types `driver` binds. Only those reach
/// setup/teardown/plug/unplug, so anything else is malformed input.
pub fn check_segment_type(
    segment: &Segment,
    driver: &str,
    network_types: &[NetworkType],
) -> Result<(), DriverError> {
    if network_types.contains(&segment.network_type) {
        Ok(())
    } else {
        Err(DriverError::InvalidInput(format!(
            "{driver} never binds {} segments (segment {})",
            network_type_name(segment.network_type),
            segment.id
        )))
    }
}

/// `Ok` when a plug/unplug is for a binding `driver` can have made: its `vif_type`, and a port
/// with an id.
pub fn check_port_binding(
    ctx: &PortContext,
    driver: &str,
    vif_type: &str,
) -> Result<(), DriverError> {
    if ctx.vif_type != vif_type {
        return Err(DriverError::InvalidInput(format!(
            "{driver} binds vif_type {vif_type}, not {}",
            ctx.vif_type
        )));
    }
    if ctx.port.id.is_empty() {
        return Err(DriverError::InvalidInput("port has an empty id".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn json_strings_round_trip() {
        for s in [
            "br100",
            "",
            "a\"b\\c",
            "tab\there",
            "ünï",
            "nul\u{0}bell\u{7}",
            "cr\r\nlf",
        ] {
            assert_eq!(json_parse_str(&json_str(s)).as_deref(), Some(s));
        }
        assert_eq!(json_parse_str(" \"br100\" ").as_deref(), Some("br100"));
        assert_eq!(json_parse_str("\"\\u0041\"").as_deref(), Some("A"));
        assert_eq!(
            json_parse_str("\"a\\/b\\b\\f\"").as_deref(),
            Some("a/b\u{8}\u{c}")
        );
        assert_eq!(json_parse_str("br100"), None);
        assert_eq!(json_parse_str("\"a\"b\""), None);
        assert_eq!(json_parse_str("\"bad\\q\""), None);
        assert_eq!(json_parse_str("\"\\u00\""), None);
        assert_eq!(json_parse_str("\"\\ud800\""), None);
        assert_eq!(json_parse_str("\"raw\ttab\""), None);
        assert_eq!(json_parse_str("\""), None);
        assert_eq!(json_parse_str(""), None);
    }

    #[test]
    fn json_bools_round_trip() {
        for b in [true, false] {
            assert_eq!(json_parse_bool(&json_bool(b)), Some(b));
        }
        assert_eq!(json_parse_bool(" false "), Some(false));
        assert_eq!(json_parse_bool("\"true\""), None);
        assert_eq!(json_parse_bool("True"), None);
        assert_eq!(json_parse_bool(""), None);
    }

    #[test]
    fn enum_names_follow_neutron() {
        let networks = [
            (NetworkType::Flat, "flat"),
            (NetworkType::Vlan, "vlan"),
            (NetworkType::Vxlan, "vxlan"),
            (NetworkType::Gre, "gre"),
            (NetworkType::Geneve, "geneve"),
            (NetworkType::Local, "local"),
        ];
        for (ty, name) in networks {
            assert_eq!(network_type_name(ty), name);
        }
        let vnics = [
            (VnicType::Normal, "normal"),
            (VnicType::Direct, "direct"),
            (VnicType::Macvtap, "macvtap"),
            (VnicType::Baremetal, "baremetal"),
            (VnicType::DirectPhysical, "direct-physical"),
            (VnicType::VirtioForwarder, "virtio-forwarder"),
            (VnicType::SmartNic, "smart-nic"),
            (VnicType::Vdpa, "vdpa"),
            (VnicType::AcceleratorDirect, "accelerator-direct"),
            (
                VnicType::AcceleratorDirectPhysical,
                "accelerator-direct-physical",
            ),
            (VnicType::RemoteManaged, "remote-managed"),
        ];
        for (ty, name) in vnics {
            assert_eq!(vnic_type_name(ty), name);
        }
    }

    #[test]
    fn macs_are_checked() {
        assert!(valid_mac("fa:16:3e:12:34:56"));
        assert!(valid_mac("FA:16:3E:AB:cd:ef"));
        for bad in [
            "",
            "not-a-mac",
            "fa:16:3e:12:34",
            "fa:16:3e:12:34:5",
            "fa:16:3e:12:34:5g",
            "fa:16:3e:12:34:56:78",
            "fa-16-3e-12-34-56",
            "fa:16:3e:12:34:56:",
        ] {
            assert!(!valid_mac(bad), "{bad}");
        }
        let mut port = testing::port();
        assert_eq!(port_mac(&port).ok(), Some("fa:16:3e:12:34:56"));
        port.mac_address = "not-a-mac".into();
        assert_eq!(
            port_mac(&port),
            Err(DriverError::InvalidInput(format!(
                "port {} has no usable MAC address: \"not-a-mac\"",
                testing::PORT_ID
            )))
        );
    }

    #[test]
    fn mtus_are_checked() {
        assert!(valid_mtu(68) && valid_mtu(1500) && valid_mtu(65535));
        assert!(!valid_mtu(0) && !valid_mtu(67) && !valid_mtu(65536));
        let mut net = testing::network(NetworkType::Vxlan);
        let mut segment = net.segments[0].clone();
        assert_eq!(segment_mtu(&net, &segment), Ok(Some(1450)));
        segment.mtu = 0;
        net.mtu = 9000;
        assert_eq!(segment_mtu(&net, &segment), Ok(Some(9000)));
        net.mtu = 0;
        assert_eq!(segment_mtu(&net, &segment), Ok(None));
        segment.mtu = 67;
        assert_eq!(
            segment_mtu(&net, &segment),
            Err(DriverError::InvalidInput(
                "MTU 67 of segment seg-vxlan is outside 68-65535".into()
            ))
        );
    }

    #[test]
    fn interface_names_segment_types_and_bindings_are_checked() {
        assert_eq!(checked_ifname("eth0", "uplink"), Ok("eth0"));
        assert_eq!(
            checked_ifname(String::from("a/b"), "uplink"),
            Err(DriverError::InvalidInput(
                "uplink \"a/b\" is not a valid interface name".into()
            ))
        );

        let segment = testing::network(NetworkType::Gre).segments[0].clone();
        assert_eq!(
            check_segment_type(&segment, "d", &[NetworkType::Gre]),
            Ok(())
        );
        assert_eq!(
            check_segment_type(&segment, "d", &[NetworkType::Flat, NetworkType::Vlan]),
            Err(DriverError::InvalidInput(
                "d never binds gre segments (segment seg-gre)".into()
            ))
        );

        let network = testing::network(NetworkType::Flat);
        let agent = testing::live_agents("a").remove(0);
        let mut ctx = testing::port_context(testing::port(), network, agent, "bridge", vec![]);
        assert_eq!(check_port_binding(&ctx, "d", "bridge"), Ok(()));
        assert_eq!(
            check_port_binding(&ctx, "d", "ovs"),
            Err(DriverError::InvalidInput(
                "d binds vif_type ovs, not bridge".into()
            ))
        );
        ctx.port.id.clear();
        assert_eq!(
            check_port_binding(&ctx, "d", "bridge"),
            Err(DriverError::InvalidInput("port has an empty id".into()))
        );
    }

    #[test]
    fn pairs_are_looked_up_by_key() {
        let pairs = vec![pair("a", "1"), pair("b", "2"), pair("a", "3")];
        assert_eq!(pairs_get(&pairs, "a"), Some("1"));
        assert_eq!(pairs_get(&pairs, "b"), Some("2"));
        assert_eq!(pairs_get(&pairs, "c"), None);
    }
}

//! Small helpers the SDK does not (yet) provide: Neutron's names of the contract's enums, the
//! MTU of a segment, and reading JSON texts back out of `vif-details`.

use neutrino_sdk::types::{Network, NetworkType, Segment, VnicType};

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

/// The segment's MTU, else the network's; `None` when neither is set (0).
pub fn segment_mtu(network: &Network, segment: &Segment) -> Option<u32> {
    [segment.mtu, network.mtu].into_iter().find(|mtu| *mtu > 0)
}

/// The string a JSON string literal stands for (`"\"br100\""` → `br100`); `None` when `text`
/// is not one.
#[allow(dead_code)]
pub fn parse_json_str(text: &str) -> Option<String> {
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

/// The boolean a JSON literal stands for; `None` when `text` is not `true` or `false`.
#[allow(dead_code)]
pub fn parse_json_bool(text: &str) -> Option<bool> {
    match text.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neutrino_sdk::json_str;

    #[test]
    fn json_strings_round_trip() {
        for s in ["br100", "", "a\"b\\c", "tab\there", "ünï"] {
            assert_eq!(parse_json_str(&json_str(s)).as_deref(), Some(s));
        }
        assert_eq!(parse_json_str("\"\\u0041\"").as_deref(), Some("A"));
        assert_eq!(parse_json_str("br100"), None);
        assert_eq!(parse_json_str("\"a\"b\""), None);
        assert_eq!(parse_json_str("\"bad\\q\""), None);
        assert_eq!(parse_json_str("\""), None);
    }

    #[test]
    fn json_bools() {
        assert_eq!(parse_json_bool("true"), Some(true));
        assert_eq!(parse_json_bool(" false "), Some(false));
        assert_eq!(parse_json_bool("\"true\""), None);
    }

    #[test]
    fn enum_names_follow_neutron() {
        assert_eq!(vnic_type_name(VnicType::DirectPhysical), "direct-physical");
        assert_eq!(vnic_type_name(VnicType::Direct), "direct");
        assert_eq!(network_type_name(NetworkType::Vxlan), "vxlan");
    }
}

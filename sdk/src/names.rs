//! Neutron's device names. The rule: prefix + id, cut to 14 characters (`NIC_NAME_LEN`), one
//! under the kernel's 15-byte limit. So a 3-character prefix keeps the first 11 characters of
//! the port id: port `3f1c2a9e-7b44-…` → `tap3f1c2a9e-7b`.

/// Longest device name Neutron produces (the kernel allows 15 bytes).
pub const NIC_NAME_LEN: usize = 14;
/// The kernel's limit on an interface name, in bytes.
pub const IFNAMSIZ_MAX: usize = 15;

/// A `physical_interfaces` grant entry meaning "the interfaces and bridges the agent of the
/// call maps in its `interface_mappings` and `bridge_mappings`" (the operator's choice, on
/// that host). A driver that plugs into the mapped physical interface declares this instead
/// of `*`: the host then lets it use (never remove or re-address) exactly those. Not an interface name (it has a
/// `:`), so it cannot be mistaken for one.
pub const MAPPED_INTERFACES: &str = "agent:interface_mappings";

/// `prefix` + `id`, cut to [`NIC_NAME_LEN`] bytes (on a character boundary).
pub fn device_name(prefix: &str, id: &str) -> String {
    let mut name = String::with_capacity(NIC_NAME_LEN);
    for c in prefix.chars().chain(id.chars()) {
        if name.len() + c.len_utf8() > NIC_NAME_LEN {
            break;
        }
        name.push(c);
    }
    name
}

/// The instance-side tap device of a port.
pub fn tap(port_id: &str) -> String {
    device_name("tap", port_id)
}

/// The hybrid-plug Linux bridge of a port.
pub fn qbr(port_id: &str) -> String {
    device_name("qbr", port_id)
}

/// The bridge end of the hybrid-plug veth pair.
pub fn qvb(port_id: &str) -> String {
    device_name("qvb", port_id)
}

/// The OVS end of the hybrid-plug veth pair.
pub fn qvo(port_id: &str) -> String {
    device_name("qvo", port_id)
}

/// The Linux bridge agent's bridge of a network.
pub fn brq(network_id: &str) -> String {
    device_name("brq", network_id)
}

/// The Linux bridge agent's VXLAN device of a VNI.
pub fn vxlan(vni: u32) -> String {
    format!("vxlan-{vni}")
}

/// The DHCP device inside a `qdhcp-` namespace (Neutron's `ns-` prefix when veths are used).
pub fn dhcp_ns_device(port_id: &str) -> String {
    device_name("ns-", port_id)
}

/// A VLAN sub-interface `<iface>.<vlan>`; when that would pass 15 bytes the interface part
/// becomes a short stable hash, as the Linux bridge agent does.
pub fn vlan_subinterface(interface: &str, vlan: u16) -> String {
    let name = format!("{interface}.{vlan}");
    if name.len() <= IFNAMSIZ_MAX {
        return name;
    }
    let suffix = format!(".{vlan}");
    let hash = format!("{:08x}", fnv1a32(interface.as_bytes()));
    let room = IFNAMSIZ_MAX - suffix.len();
    format!("{}{}", &hash[..room.min(hash.len())], suffix)
}

/// True when `name` is a usable interface name, by the host's one grammar of names: 1-15
/// bytes of printable ASCII other than `/`, `:`, quotes and backslash, not `.` or `..`, not
/// starting with `-` (which `ovs-vsctl` and `ip` would read as an option).
pub fn is_valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= IFNAMSIZ_MAX
        && name != "."
        && name != ".."
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"/:\"'`\\".contains(&b))
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORT: &str = "3f1c2a9e-7b44-4f7e-9a51-0c8d2b6f1e11";

    #[test]
    fn port_devices_follow_neutron() {
        assert_eq!(tap(PORT), "tap3f1c2a9e-7b");
        assert_eq!(qbr(PORT), "qbr3f1c2a9e-7b");
        assert_eq!(qvb(PORT), "qvb3f1c2a9e-7b");
        assert_eq!(qvo(PORT), "qvo3f1c2a9e-7b");
        assert_eq!(brq(PORT), "brq3f1c2a9e-7b");
        assert_eq!(dhcp_ns_device(PORT), "ns-3f1c2a9e-7b");
    }

    #[test]
    fn names_never_pass_the_kernel_limit() {
        assert!(device_name("averylongprefix", PORT).len() <= NIC_NAME_LEN);
        assert_eq!(vlan_subinterface("eth1", 100), "eth1.100");
        let long = vlan_subinterface("enp129s0f1np1", 4094);
        assert!(long.len() <= IFNAMSIZ_MAX, "{long}");
        assert!(long.ends_with(".4094"));
        assert_eq!(long, vlan_subinterface("enp129s0f1np1", 4094));
        assert!(is_valid_ifname(&long));
        assert!(!is_valid_ifname("sixteen-chars-xx"));
        assert!(!is_valid_ifname("a/b"));
        for smuggled in ["--", "-x", "tap\u{b}1", "tap\u{1b}[31m", "t\u{e9}p", "a b"] {
            assert!(!is_valid_ifname(smuggled), "{smuggled:?}");
        }
    }
}

//! One port's files (Neutron's formats, section 4.2 of the reference): its DHCP host entry
//! (`host/<port id>`), its DNS names (`addn_hosts/<port id>`, hosts(5) format) and its
//! `extra_dhcp_opts` (`port_opts/<port id>`). An empty text means "no file".

use std::net::{IpAddr, Ipv4Addr};

use super::network::{Mode, Port};
use super::options::format_option;
use neutrino_ipam as ipam;

/// Owners whose ports get no entry at all, as in Neutron.
const SKIPPED_OWNERS: [&str; 4] = [
    "network:router_ha_interface",
    "network:floatingip",
    "network:dhcp",
    "network:distributed",
];

/// Owners of router interfaces: a subnet whose gateway is one of them is not isolated.
pub const ROUTER_INTERFACE_OWNERS: [&str; 3] = [
    "network:router_interface",
    "network:ha_router_replicated_interface",
    "network:router_interface_distributed",
];

/// The `extra_dhcp_opts` name that is the client identifier of the host entry, not an option.
const CLIENT_ID: &str = "client-id";

/// Whether a port with this owner gets DHCP entries.
pub fn has_entries(device_owner: &str) -> bool {
    !SKIPPED_OWNERS.contains(&device_owner)
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortFiles {
    pub host: String,
    pub names: String,
    pub opts: String,
}

/// The port's files. `domain` is the DNS domain without its trailing dot.
pub fn port_files(port: &Port, domain: &str) -> PortFiles {
    let id = &port.src.id;
    let client_id = port
        .src
        .extra_dhcp_opts
        .iter()
        .find(|o| o.opt_name == CLIENT_ID)
        .map(|o| format!("id:{},", o.opt_value))
        .unwrap_or_default();
    let has_opts = port
        .src
        .extra_dhcp_opts
        .iter()
        .any(|o| o.opt_name != CLIENT_ID);
    let set_tag = if has_opts {
        format!(",set:port-{id}")
    } else {
        String::new()
    };
    let mut host = Vec::new();
    let mut names = String::new();
    for a in port.addresses.iter().filter(|a| a.subnet.served()) {
        let hostname = hostname(port, a.ip);
        let fqdn = format!("{hostname}.{domain}.");
        names.push_str(&format!("{}\t{fqdn} {hostname}\n", a.ip));
        let line = match (a.ip, a.subnet.mode) {
            (IpAddr::V4(ip), _) => format!("{},{client_id}{fqdn},{ip}{set_tag}", port.mac),
            (IpAddr::V6(ip), Mode::Addresses) => {
                format!("{},tag:dhcpv6,{client_id}{fqdn},[{ip}]{set_tag}", port.mac)
            }
            (IpAddr::V6(_), _) if has_opts => format!("{},tag:dhcpv6{set_tag}", port.mac),
            (IpAddr::V6(_), _) => continue,
        };
        if !host.contains(&line) {
            host.push(line);
        }
    }
    let versions: Vec<u8> = port
        .addresses
        .iter()
        .map(|a| ipam::version_of(a.ip))
        .collect();
    let opts: String = port
        .src
        .extra_dhcp_opts
        .iter()
        .filter(|o| o.opt_name != CLIENT_ID && versions.contains(&o.ip_version))
        .map(|o| {
            let tag = format!("port-{id}");
            format_option(o.ip_version, &tag, &o.opt_name, &[&o.opt_value]) + "\n"
        })
        .collect();
    PortFiles {
        host: host.iter().map(|l| format!("{l}\n")).collect(),
        names,
        opts,
    }
}

/// The IPv4 leases dnsmasq hands this port: (MAC, address).
pub fn v4_leases(port: &Port) -> Vec<(String, Ipv4Addr)> {
    port.addresses
        .iter()
        .filter(|a| a.subnet.served())
        .filter_map(|a| match a.ip {
            IpAddr::V4(ip) => Some((port.mac.clone(), ip)),
            IpAddr::V6(_) => None,
        })
        .collect()
}

/// `dns_assignment`'s host name: the port's DNS name, or one made from the address when the
/// port has none (the server then sends the name made from one of its addresses).
fn hostname(port: &Port, ip: IpAddr) -> String {
    let given = port.src.hostname.trim_end_matches('.');
    let generated = |ip: IpAddr| ipam::generated_hostname(&ip.to_string());
    let is_generated = given.is_empty() || port.addresses.iter().any(|a| generated(a.ip) == given);
    if is_generated {
        generated(ip)
    } else {
        given.to_string()
    }
}

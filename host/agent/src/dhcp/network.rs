//! The input, checked once: subnets parsed into addresses, and the identifiers that become file
//! names or dnsmasq tags checked, so nothing from the server can escape its file or its line.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Result, invalid};
use neutrino_ipam as ipam;
use neutrino_proto::{DhcpSubnet, ExtraDhcpOpt, HostPort};

/// How dnsmasq serves a subnet (Neutron: IPv4 and stateful IPv6 assign addresses, stateless
/// IPv6 only options, SLAAC nothing; IPv6 with no mode is treated as stateful).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Addresses,
    OptionsOnly,
    Nothing,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Subnet {
    pub id: String,
    pub version: u8,
    pub net: IpNet,
    pub gateway: Option<IpAddr>,
    pub enable_dhcp: bool,
    pub mode: Mode,
    pub dns_nameservers: Vec<IpAddr>,
    pub host_routes: Vec<(IpNet, IpAddr)>,
}

impl Subnet {
    pub fn parse(s: &DhcpSubnet) -> Result<Subnet> {
        check_id("subnet", &s.id)?;
        if s.ip_version != 4 && s.ip_version != 6 {
            return Err(invalid(format!(
                "subnet {}: ip_version {} is neither 4 nor 6",
                s.id, s.ip_version
            )));
        }
        let net = ipam::parse_cidr(&s.cidr, s.ip_version)
            .map_err(|e| invalid(format!("subnet {}: {e}", s.id)))?;
        let in_family = |text: &str, what: &str| -> Result<IpAddr> {
            let ip: IpAddr = text.parse().map_err(|_| {
                invalid(format!(
                    "subnet {}: {what} '{text}' is not an IP address",
                    s.id
                ))
            })?;
            if ipam::version_of(ip) != s.ip_version {
                return Err(invalid(format!(
                    "subnet {}: {what} {ip} is not IPv{}",
                    s.id, s.ip_version
                )));
            }
            Ok(ip)
        };
        let gateway = match &s.gateway_ip {
            Some(g) => Some(in_family(g, "gateway_ip")?),
            None => None,
        };
        let dns_nameservers = s
            .dns_nameservers
            .iter()
            .map(|d| in_family(d, "dns nameserver"))
            .collect::<Result<Vec<_>>>()?;
        let host_routes = s
            .host_routes
            .iter()
            .map(|(dest, nexthop)| {
                // Not ipam::parse_cidr: a host route may be a default route (/0).
                let net = dest
                    .parse::<IpNet>()
                    .ok()
                    .filter(|n| ipam::version_of(n.addr()) == s.ip_version)
                    .ok_or_else(|| {
                        invalid(format!(
                            "subnet {}: host route destination '{dest}' is not an IPv{} CIDR",
                            s.id, s.ip_version
                        ))
                    })?;
                Ok((net.trunc(), in_family(nexthop, "host route nexthop")?))
            })
            .collect::<Result<Vec<_>>>()?;
        let mode = match (s.ip_version, s.ipv6_address_mode.as_deref()) {
            (4, _) => Mode::Addresses,
            // A prefix longer than /64 cannot hold a DHCPv6 range (Neutron ignores it).
            (_, _) if net.prefix_len() > 64 => Mode::Nothing,
            (_, None | Some("dhcpv6-stateful")) => Mode::Addresses,
            (_, Some("dhcpv6-stateless")) => Mode::OptionsOnly,
            (_, Some("slaac")) => Mode::Nothing,
            (_, Some(other)) => {
                return Err(invalid(format!(
                    "subnet {}: unknown ipv6_address_mode '{other}'",
                    s.id
                )));
            }
        };
        Ok(Subnet {
            id: s.id.clone(),
            version: s.ip_version,
            net,
            gateway,
            enable_dhcp: s.enable_dhcp,
            mode,
            dns_nameservers,
            host_routes,
        })
    }

    /// Whether dnsmasq gets a `--dhcp-range` for it.
    pub fn served(&self) -> bool {
        self.enable_dhcp && self.mode != Mode::Nothing
    }

    /// The dnsmasq tag its range sets and its options match.
    pub fn tag(&self) -> String {
        format!("subnet-{}", self.id)
    }
}

/// Every subnet of the network, in the server's order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Subnets(pub Vec<Subnet>);

impl Subnets {
    pub fn parse(subnets: &[DhcpSubnet]) -> Result<Subnets> {
        subnets
            .iter()
            .map(Subnet::parse)
            .collect::<Result<_>>()
            .map(Subnets)
    }

    pub fn get(&self, id: &str) -> Option<&Subnet> {
        self.0.iter().find(|s| s.id == id)
    }
}

/// A port's address on one of the network's subnets.
pub struct Address<'a> {
    pub ip: IpAddr,
    pub subnet: &'a Subnet,
}

/// A port, checked: its MAC normalised and every fixed IP on a known subnet of the network.
pub struct Port<'a> {
    pub src: &'a HostPort,
    pub mac: String,
    pub addresses: Vec<Address<'a>>,
}

impl<'a> Port<'a> {
    pub fn parse(port: &'a HostPort, subnets: &'a Subnets) -> Result<Port<'a>> {
        check_id("port", &port.id)?;
        let (mac, _) = ipam::normalize_mac(&port.mac_address).ok_or_else(|| {
            invalid(format!(
                "port {}: '{}' is not a MAC address",
                port.id, port.mac_address
            ))
        })?;
        let addresses = port
            .fixed_ips
            .iter()
            .map(|f| {
                let subnet = subnets.get(&f.subnet_id).ok_or_else(|| {
                    invalid(format!(
                        "port {}: subnet {} is not a subnet of the network",
                        port.id, f.subnet_id
                    ))
                })?;
                let ip: IpAddr = f.ip_address.parse().map_err(|_| {
                    invalid(format!(
                        "port {}: '{}' is not an IP address",
                        port.id, f.ip_address
                    ))
                })?;
                if !subnet.net.contains(&ip) {
                    return Err(invalid(format!(
                        "port {}: {ip} is not in subnet {} ({})",
                        port.id, subnet.id, subnet.net
                    )));
                }
                Ok(Address { ip, subnet })
            })
            .collect::<Result<Vec<_>>>()?;
        check_hostname(&port.id, &port.hostname)?;
        for opt in &port.extra_dhcp_opts {
            check_extra_opt(&port.id, opt)?;
        }
        Ok(Port {
            src: port,
            mac,
            addresses,
        })
    }
}

/// Identifiers become file names and dnsmasq tags: letters, digits, `-` and `_` only.
pub fn check_id(kind: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{kind} id '{id}' must be 1 to 64 letters, digits, '-' or '_'"
        )))
    }
}

fn check_hostname(port_id: &str, name: &str) -> Result<()> {
    let ok = name.trim_end_matches('.').split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if name.is_empty() || ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "port {port_id}: hostname '{name}' is not a valid DNS name"
        )))
    }
}

/// An option is one line of a dnsmasq options file: a line break or a control character in it
/// would start another option.
fn check_extra_opt(port_id: &str, opt: &ExtraDhcpOpt) -> Result<()> {
    // The API's rule (a server of an older version may have stored what it now refuses).
    if let Some(problem) = neutrino_proto::dhcp_opt_problem(&opt.opt_name, &opt.opt_value) {
        return Err(invalid(format!(
            "port {port_id}: extra_dhcp_opt: {problem}"
        )));
    }
    if opt.ip_version != 4 && opt.ip_version != 6 {
        return Err(invalid(format!(
            "port {port_id}: extra_dhcp_opt {} has ip_version {}",
            opt.opt_name, opt.ip_version
        )));
    }
    Ok(())
}

/// A Linux interface name: 1 to 15 bytes, no '/', ':' or white space.
pub fn check_interface(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("'{name}' is not an interface name")))
    }
}

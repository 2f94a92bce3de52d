//! The iptables rules of one filtered port, as Neutron's iptables hybrid firewall writes them
//! (`iptables_firewall.py`): per port an ingress chain (`nq-i…`), an egress chain (`nq-o…`) and
//! an anti-spoofing chain (`nq-s…`), each in `iptables-restore` syntax, for one IP family.
//! iptables' direction is the reverse of the group rule's: traffic *to* the instance leaves the
//! bridge through its device (`--physdev-out`), traffic *from* it enters through it.

use std::net::IpAddr;

use ipnet::IpNet;
use neutrino_proto::{FilterRule, PortFilter};

/// Every chain, set and comment this firewall makes starts so; nothing else is ever touched.
pub const PREFIX: &str = "nq-";
/// Jumped to from `FORWARD`: sends the bridged traffic of every known port to [`PORTS`] (or
/// accepts it, for an unfiltered port).
pub const DISPATCH: &str = "nq-forward";
/// The filtered ports' chains, by device; ends with ACCEPT (what no port chain dropped).
pub const PORTS: &str = "nq-ports";
/// Where a port chain sends what no rule allowed.
pub const FALLBACK: &str = "nq-fallback";
/// In the raw table, jumped to from `PREROUTING`: conntrack zones per bridge.
pub const ZONES: &str = "nq-zones";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    pub fn of(address: &IpAddr) -> Family {
        if address.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    fn ethertype(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// `iptables-restore` or `ip6tables-restore`, `iptables-save` or `ip6tables-save`.
    pub fn tool(self, verb: &str) -> String {
        match self {
            Family::V4 => format!("iptables-{verb}"),
            Family::V6 => format!("ip6tables-{verb}"),
        }
    }
}

/// A port's chain names: Neutron's `i`/`o`/`s` and the first ten characters of its id.
pub fn chain(kind: char, port_id: &str) -> String {
    let short: String = port_id.chars().take(10).collect();
    format!("{PREFIX}{kind}{short}")
}

/// The ipset of a remote group's addresses of one family: 24 hex digits of the group's id (96
/// bits), so that the name and its `-n` twin (written then swapped in) fit ipset's 31 bytes.
pub fn set_name(family: Family, group_id: &str) -> String {
    let hex: String = group_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(24)
        .collect();
    let v = match family {
        Family::V4 => '4',
        Family::V6 => '6',
    };
    format!("{PREFIX}{v}{hex}")
}

/// The port as its chains need it.
pub struct FilteredPort<'a> {
    pub id: &'a str,
    pub mac: &'a str,
    pub addresses: &'a [IpAddr],
    pub filter: &'a PortFilter,
}

/// The rules (lines after `-A <chain>`) of a port's three chains, for one family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortChains {
    pub ingress: Vec<String>,
    pub egress: Vec<String>,
    pub spoof: Vec<String>,
}

impl PortChains {
    /// The port's chains for `family`; `has_set(name)` says whether a remote group's ipset
    /// exists with members (a rule naming an empty group matches nothing and is left out).
    pub fn build(port: &FilteredPort, family: Family, has_set: &dyn Fn(&str) -> bool) -> Self {
        let stateful = port.filter.stateful;
        let spoof_chain = chain('s', port.id);
        let mut ingress = Vec::new();
        let mut egress = Vec::new();
        match family {
            Family::V4 => {
                // DHCP: discovery from 0.0.0.0 before any address, then the anti-spoofing
                // chain, renewals, and never a DHCP server in an instance.
                egress.push(
                    "-s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp --sport 68 --dport 67 -j RETURN"
                        .to_string(),
                );
                egress.push(format!("-j {spoof_chain}"));
                egress.push("-p udp -m udp --sport 68 --dport 67 -j RETURN".into());
                egress.push("-p udp -m udp --sport 67 --dport 68 -j DROP".into());
                // The DHCP server's answers (Neutron's provider rule).
                ingress.push("-p udp -m udp --sport 67 --dport 68 -j RETURN".into());
            }
            Family::V6 => {
                // Neighbour discovery and MLD in; DAD and MLD from :: out; no router
                // advertisements from an instance, the rest of ICMPv6 out, DHCPv6 client only.
                for t in [130, 135, 136] {
                    ingress.push(format!("-p ipv6-icmp -m icmp6 --icmpv6-type {t} -j RETURN"));
                }
                ingress.push("-p ipv6-icmp -m icmp6 --icmpv6-type 134 -j RETURN".into());
                ingress.push("-p udp -m udp --sport 547 --dport 546 -j RETURN".into());
                for t in [131, 135, 143] {
                    egress.push(format!(
                        "-s ::/128 -d ff02::/16 -p ipv6-icmp -m icmp6 --icmpv6-type {t} -j RETURN"
                    ));
                }
                egress.push(format!("-j {spoof_chain}"));
                egress.push("-p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP".into());
                egress.push("-p ipv6-icmp -j RETURN".into());
                egress.push("-p udp -m udp --sport 546 --dport 547 -j RETURN".into());
                egress.push("-p udp -m udp --sport 547 --dport 546 -j DROP".into());
            }
        }
        if stateful {
            for c in [&mut ingress, &mut egress] {
                c.push("-m state --state RELATED,ESTABLISHED -j RETURN".into());
            }
        }
        let mut seen = std::collections::HashSet::new();
        for rule in &port.filter.rules {
            if rule.ethertype != family.ethertype() || !seen.insert(rule) {
                continue;
            }
            let Some(args) = rule_args(rule, family, has_set) else {
                continue;
            };
            let line = format!("{args}-j RETURN");
            match rule.direction.as_str() {
                "ingress" => ingress.push(line),
                _ => egress.push(line),
            }
        }
        for c in [&mut ingress, &mut egress] {
            if stateful {
                c.push("-m state --state INVALID -j DROP".into());
            }
            c.push(format!("-j {FALLBACK}"));
        }
        PortChains {
            ingress,
            egress,
            spoof: spoof_rules(port, family),
        }
    }
}

/// One RETURN per (MAC, source) the port may send from: its MAC with each fixed IP (and, in
/// IPv6, its link-local address), each allowed address pair; then DROP.
fn spoof_rules(port: &FilteredPort, family: Family) -> Vec<String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mac = port.mac.to_uppercase();
    for a in port.addresses.iter().filter(|a| Family::of(a) == family) {
        pairs.push((mac.clone(), host_cidr(a)));
    }
    if family == Family::V6
        && let Some(local) = link_local(port.mac)
    {
        pairs.push((mac.clone(), format!("{local}/128")));
    }
    for pair in &port.filter.allowed_address_pairs {
        let Some(net) = parse_cidr(&pair.ip_address) else {
            continue;
        };
        if Family::of(&net.addr()) == family {
            pairs.push((pair.mac_address.to_uppercase(), net.trunc().to_string()));
        }
    }
    pairs.dedup();
    // A MAC that is not one (never from our server) allows nothing rather than reach iptables.
    let mut rules: Vec<String> = pairs
        .into_iter()
        .filter(|(mac, _)| link_local(mac).is_some())
        .map(|(mac, source)| format!("-s {source} -m mac --mac-source {mac} -j RETURN"))
        .collect();
    if port.addresses.is_empty() && family == Family::V4 && link_local(&mac).is_some() {
        rules.push(format!("-m mac --mac-source {mac} -j RETURN"));
    }
    rules.push("-j DROP".into());
    rules
}

/// A rule's match arguments (each followed by a space), or None when it can match nothing
/// here (a remote group without members on this host).
fn rule_args(rule: &FilterRule, family: Family, has_set: &dyn Fn(&str) -> bool) -> Option<String> {
    let mut args = String::new();
    let side = if rule.direction == "ingress" {
        's'
    } else {
        'd'
    };
    if let Some(prefix) = rule.remote_ip_prefix.as_deref().and_then(parse_cidr) {
        if prefix.prefix_len() != 0 {
            args.push_str(&format!("-{side} {} ", prefix.trunc()));
        }
    } else if let Some(group) = &rule.remote_group_id {
        let set = set_name(family, group);
        if !has_set(&set) {
            return None;
        }
        let dir = if side == 's' { "src" } else { "dst" };
        args.push_str(&format!("-m set --match-set {set} {dir} "));
    }
    let Ok(protocol) = protocol(rule.protocol.as_deref(), family) else {
        tracing::warn!(
            "a rule's protocol {:?} is unknown here: the rule is left out",
            rule.protocol
        );
        return None;
    };
    let Some(protocol) = protocol else {
        return Some(args);
    };
    args.push_str(&format!("-p {protocol} "));
    match protocol.as_str() {
        "tcp" | "udp" | "sctp" | "dccp" | "udplite" => {
            if let Some(min) = rule.port_range_min {
                let max = rule.port_range_max.unwrap_or(min);
                if min == max && protocol != "udplite" {
                    args.push_str(&format!("-m {protocol} --dport {min} "));
                } else {
                    args.push_str(&format!("-m multiport --dports {min}:{max} "));
                }
            }
        }
        "icmp" | "ipv6-icmp" => {
            if let Some(kind) = rule.port_range_min {
                let code = rule
                    .port_range_max
                    .map(|c| format!("/{c}"))
                    .unwrap_or_default();
                if protocol == "icmp" {
                    args.push_str(&format!("-m icmp --icmp-type {kind}{code} "));
                } else {
                    args.push_str(&format!("-m icmp6 --icmpv6-type {kind}{code} "));
                }
            }
        }
        _ => {}
    }
    Some(args)
}

/// The protocol as iptables takes it, None for any, Err for a name iptables may not know.
/// ICMP in an IPv6 rule is ICMPv6, as in Neutron.
fn protocol(given: Option<&str>, family: Family) -> Result<Option<String>, ()> {
    let Some(p) = given.map(str::to_ascii_lowercase) else {
        return Ok(None);
    };
    let name = match p.as_str() {
        "" | "any" | "0" => return Ok(None),
        "6" => "tcp",
        "17" => "udp",
        "132" => "sctp",
        "33" => "dccp",
        "136" => "udplite",
        "icmp" | "1" if family == Family::V6 => "ipv6-icmp",
        "1" => "icmp",
        "icmpv6" | "ipv6-icmp" | "58" => "ipv6-icmp",
        // Other numbers as they are; other names only as iptables spells them (a name from
        // the server is never passed through unchecked into a restore file).
        other if other.parse::<u8>().is_ok() => other,
        other @ ("tcp" | "udp" | "icmp" | "sctp" | "dccp" | "udplite" | "gre" | "esp" | "ah"
        | "igmp" | "ipip" | "ospf" | "pgm" | "vrrp" | "egp" | "ipv6-encap"
        | "ipv6-frag" | "ipv6-nonxt" | "ipv6-opts" | "ipv6-route" | "rsvp") => other,
        _ => return Err(()),
    };
    Ok(Some(name.to_string()))
}

pub(crate) fn parse_cidr(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

fn host_cidr(a: &IpAddr) -> String {
    match a {
        IpAddr::V4(_) => format!("{a}/32"),
        IpAddr::V6(_) => format!("{a}/128"),
    }
}

/// The EUI-64 link-local address of a MAC; None when it is not six hexadecimal octets.
pub(crate) fn link_local(mac: &str) -> Option<std::net::Ipv6Addr> {
    let b: Vec<u8> = mac
        .split(':')
        .map(|h| {
            (h.len() == 2 && h.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| u8::from_str_radix(h, 16).ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    let [a0, a1, a2, a3, a4, a5] = b[..] else {
        return None;
    };
    let words = [
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([a0 ^ 0x02, a1]),
        u16::from_be_bytes([a2, 0xff]),
        u16::from_be_bytes([0xfe, a3]),
        u16::from_be_bytes([a4, a5]),
    ];
    Some(std::net::Ipv6Addr::new(
        words[0], words[1], words[2], words[3], words[4], words[5], words[6], words[7],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use neutrino_proto::AddressPair;

    fn rule(
        direction: &str,
        protocol: Option<&str>,
        min: Option<u32>,
        max: Option<u32>,
    ) -> FilterRule {
        FilterRule {
            direction: direction.into(),
            ethertype: "IPv4".into(),
            protocol: protocol.map(str::to_string),
            port_range_min: min,
            port_range_max: max,
            remote_ip_prefix: None,
            remote_group_id: None,
        }
    }

    fn chains(filter: &PortFilter, family: Family) -> PortChains {
        let addresses: Vec<IpAddr> = vec!["10.0.0.5".parse().unwrap(), "fd00::5".parse().unwrap()];
        let port = FilteredPort {
            id: "0123456789abcdef",
            mac: "fa:16:3e:00:00:01",
            addresses: &addresses,
            filter,
        };
        PortChains::build(&port, family, &|set| set.ends_with("aaaa"))
    }

    #[test]
    fn rules_become_neutrons_iptables_arguments() {
        let mut web = rule("ingress", Some("tcp"), Some(80), Some(80));
        web.remote_ip_prefix = Some("0.0.0.0/0".into());
        let mut range = rule("ingress", Some("17"), Some(1000), Some(2000));
        range.remote_ip_prefix = Some("10.1.2.3/16".into());
        let ping = rule("ingress", Some("icmp"), Some(8), Some(0));
        let mut members = rule("ingress", None, None, None);
        members.remote_group_id = Some("aaaa".into());
        let mut empty_group = rule("ingress", None, None, None);
        empty_group.remote_group_id = Some("bbbb".into());
        let out = rule("egress", None, None, None);
        let filter = PortFilter {
            stateful: true,
            rules: vec![web.clone(), web, range, ping, members, empty_group, out],
            allowed_address_pairs: vec![AddressPair {
                mac_address: "fa:16:3e:00:00:02".into(),
                ip_address: "10.9.0.0/24".into(),
            }],
        };
        let c = chains(&filter, Family::V4);
        assert_eq!(
            c.ingress,
            [
                "-p udp -m udp --sport 67 --dport 68 -j RETURN",
                "-m state --state RELATED,ESTABLISHED -j RETURN",
                "-p tcp -m tcp --dport 80 -j RETURN",
                "-s 10.1.0.0/16 -p udp -m multiport --dports 1000:2000 -j RETURN",
                "-p icmp -m icmp --icmp-type 8/0 -j RETURN",
                "-m set --match-set nq-4aaaa src -j RETURN",
                "-m state --state INVALID -j DROP",
                "-j nq-fallback",
            ]
        );
        assert_eq!(c.egress[1], "-j nq-s0123456789");
        assert!(
            c.egress.contains(&"-j RETURN".to_string()),
            "{:?}",
            c.egress
        );
        assert_eq!(
            c.spoof,
            [
                "-s 10.0.0.5/32 -m mac --mac-source FA:16:3E:00:00:01 -j RETURN",
                "-s 10.9.0.0/24 -m mac --mac-source FA:16:3E:00:00:02 -j RETURN",
                "-j DROP",
            ]
        );
        let v6 = chains(&filter, Family::V6);
        assert!(
            v6.spoof.contains(
                &"-s fe80::f816:3eff:fe00:1/128 -m mac --mac-source FA:16:3E:00:00:01 -j RETURN"
                    .to_string()
            )
        );
        assert!(
            !v6.ingress.iter().any(|r| r.contains("--dport 80")),
            "IPv4 rules only"
        );
    }

    #[test]
    fn a_stateless_port_has_no_connection_tracking_rules() {
        let filter = PortFilter {
            stateful: false,
            rules: vec![rule("ingress", Some("icmp"), None, None)],
            allowed_address_pairs: vec![],
        };
        let c = chains(&filter, Family::V4);
        assert!(
            !c.ingress.iter().any(|r| r.contains("state")),
            "{:?}",
            c.ingress
        );
        assert!(c.ingress.contains(&"-p icmp -j RETURN".to_string()));
    }

    #[test]
    fn icmp_in_an_ipv6_rule_is_icmpv6() {
        let p = |given, family| protocol(Some(given), family).unwrap();
        assert_eq!(p("icmp", Family::V6).as_deref(), Some("ipv6-icmp"));
        assert_eq!(p("58", Family::V6).as_deref(), Some("ipv6-icmp"));
        assert_eq!(p("any", Family::V4), None);
        assert_eq!(p("6", Family::V4).as_deref(), Some("tcp"));
        assert_eq!(p("47", Family::V4).as_deref(), Some("47"));
        // Nothing unchecked reaches a restore file.
        assert!(protocol(Some("tcp -j ACCEPT"), Family::V4).is_err());
        assert!(protocol(Some("300"), Family::V4).is_err());
    }

    #[test]
    fn names_fit_iptables_and_ipset() {
        assert_eq!(chain('i', "92605eaf-b0c4-4c4f"), "nq-i92605eaf-b");
        let set = set_name(Family::V6, "51a6b772-7be4-4265-b22e-a5a966aa5d3c");
        assert!(set.len() + "-n".len() <= 31, "{set}");
        assert!(set.starts_with("nq-6"));
    }
}

//! A router namespace's `nat` and `mangle` tables as one `iptables-restore` input, in the
//! order and with the chain names of Neutron's legacy L3 agent (`neutron-l3-agent-*`, and the
//! unwrapped `neutron-postrouting-bottom`), so that an operator's Neutron habits and scripts
//! read them as they are used to. The namespace holds only these rules: the restore replaces
//! both tables whole, atomically. No metadata proxy rules: Neutrino has no metadata proxy.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// Neutron's binary-name prefix of the wrapped chains.
pub const PREFIX: &str = "neutron-l3-agent-";
/// The unwrapped chain at the end of POSTROUTING, jumping to the SNAT chain.
pub const POSTROUTING_BOTTOM: &str = "neutron-postrouting-bottom";
/// Neutron's `external_ingress_mark` and `ROUTER_MARK_MASK`.
pub const EXTERNAL_INGRESS_MARK: &str = "0x2/0xffff";

/// What the NAT of a router with a gateway depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatGateway {
    /// The `qg-` device (a checked interface name).
    pub device: String,
    /// The gateway port's first IPv4 address: the SNAT source (and without one, Neutron adds
    /// neither SNAT nor the east-west, hairpin and mark rules).
    pub address: Option<Ipv4Addr>,
    pub enable_snat: bool,
    /// (floating address, fixed address).
    pub floating_ips: Vec<(Ipv4Addr, Ipv4Addr)>,
}

fn chain(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// The restore input of both tables; `None`: a router without a gateway (or set down), whose
/// chains stay empty.
pub fn tables(gateway: Option<&NatGateway>) -> String {
    let mut text = String::new();
    nat(&mut text, gateway);
    mangle(&mut text, gateway);
    text
}

fn nat(text: &mut String, gateway: Option<&NatGateway>) {
    let (prerouting, output, postrouting) =
        (chain("PREROUTING"), chain("OUTPUT"), chain("POSTROUTING"));
    let (snat, float_snat) = (chain("snat"), chain("float-snat"));
    text.push_str("*nat\n");
    for builtin in ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"] {
        let _ = writeln!(text, ":{builtin} ACCEPT [0:0]");
    }
    for name in [
        &output,
        &postrouting,
        &prerouting,
        &float_snat,
        &snat,
        &POSTROUTING_BOTTOM.to_string(),
    ] {
        let _ = writeln!(text, ":{name} - [0:0]");
    }
    let _ = writeln!(text, "-A PREROUTING -j {prerouting}");
    let _ = writeln!(text, "-A OUTPUT -j {output}");
    let _ = writeln!(text, "-A POSTROUTING -j {postrouting}");
    let _ = writeln!(text, "-A POSTROUTING -j {POSTROUTING_BOTTOM}");
    if let Some(gw) = gateway {
        for (fip, fixed) in &gw.floating_ips {
            let _ = writeln!(
                text,
                "-A {prerouting} -d {fip}/32 -j DNAT --to-destination {fixed}"
            );
        }
        for (fip, fixed) in &gw.floating_ips {
            let _ = writeln!(
                text,
                "-A {output} -d {fip}/32 -j DNAT --to-destination {fixed}"
            );
        }
        if gw.address.is_some() {
            // East-west (not leaving through the gateway, not DNATed) is never SNATed.
            let _ = writeln!(
                text,
                "-A {postrouting} ! -o {} -m conntrack ! --ctstate DNAT -j ACCEPT",
                gw.device
            );
        }
    }
    // Floating IPs' SNAT first, always (Neutron's `-j $float-snat`).
    let _ = writeln!(text, "-A {snat} -j {float_snat}");
    if let Some(gw) = gateway {
        if let Some(address) = gw.address {
            if gw.enable_snat {
                let _ = writeln!(
                    text,
                    "-A {snat} -o {} -j SNAT --to-source {address} --random-fully",
                    gw.device
                );
            }
            // Hairpin: an internal host reaching a floating IP of this router gets its
            // answers back through the router (not straight from its neighbour).
            let _ = writeln!(
                text,
                "-A {snat} -m mark ! --mark {EXTERNAL_INGRESS_MARK} -m conntrack --ctstate DNAT \
                 -j SNAT --to-source {address} --random-fully"
            );
        }
        for (fip, fixed) in &gw.floating_ips {
            let _ = writeln!(
                text,
                "-A {float_snat} -s {fixed}/32 -j SNAT --to-source {fip} --random-fully"
            );
        }
    }
    let _ = writeln!(
        text,
        "-A {POSTROUTING_BOTTOM} -m comment --comment \"Perform source NAT on outgoing traffic.\" \
         -j {snat}"
    );
    text.push_str("COMMIT\n");
}

fn mangle(text: &mut String, gateway: Option<&NatGateway>) {
    let (prerouting, mark) = (chain("PREROUTING"), chain("mark"));
    text.push_str("*mangle\n");
    for builtin in ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"] {
        let _ = writeln!(text, ":{builtin} ACCEPT [0:0]");
    }
    let _ = writeln!(text, ":{prerouting} - [0:0]");
    let _ = writeln!(text, ":{mark} - [0:0]");
    let _ = writeln!(text, "-A PREROUTING -j {prerouting}");
    let _ = writeln!(text, "-A {prerouting} -j {mark}");
    if let Some(gw) = gateway.filter(|g| g.address.is_some()) {
        let _ = writeln!(
            text,
            "-A {mark} -i {} -j MARK --set-xmark {EXTERNAL_INGRESS_MARK}",
            gw.device
        );
    }
    text.push_str("COMMIT\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(enable_snat: bool, fips: &[(&str, &str)]) -> NatGateway {
        NatGateway {
            device: "qg-3f1c2a9e-7b".into(),
            address: Some("172.24.4.3".parse().unwrap()),
            enable_snat,
            floating_ips: fips
                .iter()
                .map(|(f, x)| (f.parse().unwrap(), x.parse().unwrap()))
                .collect(),
        }
    }

    fn rules(text: &str) -> Vec<&str> {
        text.lines().filter(|l| l.starts_with("-A ")).collect()
    }

    #[test]
    fn a_router_with_snat_and_a_floating_ip_has_neutrons_rules_in_order() {
        let text = tables(Some(&gateway(true, &[("172.24.4.10", "10.0.0.5")])));
        assert_eq!(
            rules(&text),
            vec![
                "-A PREROUTING -j neutron-l3-agent-PREROUTING",
                "-A OUTPUT -j neutron-l3-agent-OUTPUT",
                "-A POSTROUTING -j neutron-l3-agent-POSTROUTING",
                "-A POSTROUTING -j neutron-postrouting-bottom",
                "-A neutron-l3-agent-PREROUTING -d 172.24.4.10/32 -j DNAT --to-destination 10.0.0.5",
                "-A neutron-l3-agent-OUTPUT -d 172.24.4.10/32 -j DNAT --to-destination 10.0.0.5",
                "-A neutron-l3-agent-POSTROUTING ! -o qg-3f1c2a9e-7b -m conntrack ! --ctstate DNAT -j ACCEPT",
                "-A neutron-l3-agent-snat -j neutron-l3-agent-float-snat",
                "-A neutron-l3-agent-snat -o qg-3f1c2a9e-7b -j SNAT --to-source 172.24.4.3 --random-fully",
                "-A neutron-l3-agent-snat -m mark ! --mark 0x2/0xffff -m conntrack --ctstate DNAT -j SNAT --to-source 172.24.4.3 --random-fully",
                "-A neutron-l3-agent-float-snat -s 10.0.0.5/32 -j SNAT --to-source 172.24.4.10 --random-fully",
                "-A neutron-postrouting-bottom -m comment --comment \"Perform source NAT on outgoing traffic.\" -j neutron-l3-agent-snat",
                "-A PREROUTING -j neutron-l3-agent-PREROUTING",
                "-A neutron-l3-agent-PREROUTING -j neutron-l3-agent-mark",
                "-A neutron-l3-agent-mark -i qg-3f1c2a9e-7b -j MARK --set-xmark 0x2/0xffff",
            ]
        );
        // Both tables, each committed; every chain used is declared.
        assert_eq!(text.matches("COMMIT").count(), 2);
        assert!(text.starts_with("*nat\n") && text.contains("\n*mangle\n"));
        for rule in rules(&text) {
            let name = rule.split_whitespace().nth(1).unwrap();
            assert!(text.contains(&format!(":{name} ")), "{name} declared");
        }
    }

    #[test]
    fn without_snat_only_the_gateway_snat_rule_goes() {
        let with = tables(Some(&gateway(true, &[("172.24.4.10", "10.0.0.5")])));
        let without = tables(Some(&gateway(false, &[("172.24.4.10", "10.0.0.5")])));
        let gone: Vec<&str> = rules(&with)
            .into_iter()
            .filter(|r| !without.contains(r))
            .collect();
        assert_eq!(
            gone,
            vec![
                "-A neutron-l3-agent-snat -o qg-3f1c2a9e-7b -j SNAT --to-source 172.24.4.3 --random-fully"
            ]
        );
        // Floating IPs still translate both ways.
        assert!(without.contains("-s 10.0.0.5/32 -j SNAT --to-source 172.24.4.10"));
    }

    #[test]
    fn every_floating_ip_has_its_dnat_and_snat_and_nothing_is_left_of_a_removed_one() {
        let two = tables(Some(&gateway(
            true,
            &[("172.24.4.10", "10.0.0.5"), ("172.24.4.11", "10.1.0.7")],
        )));
        for (fip, fixed) in [("172.24.4.10", "10.0.0.5"), ("172.24.4.11", "10.1.0.7")] {
            let dnat = format!("-d {fip}/32 -j DNAT --to-destination {fixed}");
            assert_eq!(two.matches(&dnat).count(), 2, "PREROUTING and OUTPUT");
            assert_eq!(
                two.matches(&format!("-s {fixed}/32 -j SNAT --to-source {fip} "))
                    .count(),
                1
            );
        }
        let one = tables(Some(&gateway(true, &[("172.24.4.10", "10.0.0.5")])));
        assert!(!one.contains("172.24.4.11") && !one.contains("10.1.0.7"));
    }

    #[test]
    fn no_gateway_or_no_ipv4_gateway_address_means_no_snat_mark_or_east_west_rule() {
        for text in [
            tables(None),
            tables(Some(&NatGateway {
                address: None,
                ..gateway(true, &[])
            })),
        ] {
            assert!(!text.contains("SNAT"), "{text}");
            assert!(!text.contains("MARK"), "{text}");
            assert!(!text.contains("ctstate"), "{text}");
            // The chains are there, empty, as Neutron's iptables manager keeps them.
            assert!(text.contains(":neutron-l3-agent-float-snat - [0:0]"));
            assert!(text.contains("-A neutron-l3-agent-snat -j neutron-l3-agent-float-snat"));
        }
    }

    #[test]
    fn chain_names_fit_iptables_limit() {
        // iptables chain names are at most 28 characters.
        for name in [
            "PREROUTING",
            "POSTROUTING",
            "OUTPUT",
            "float-snat",
            "snat",
            "mark",
        ] {
            assert!(chain(name).len() <= 28, "{}", chain(name));
        }
        assert!(POSTROUTING_BOTTOM.len() <= 28);
    }
}

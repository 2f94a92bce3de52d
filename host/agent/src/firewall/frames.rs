//! What iptables cannot see: the Ethernet frames a filtered port sends, checked at the bridge
//! (ebtables' `nat` table, `PREROUTING`, on the port's device), as Neutron's Linux bridge agent
//! protects ARP: ARP only for the port's own IPv4 addresses (and its address pairs') from its
//! MAC, so that an instance cannot answer for another's address, and no frame from a MAC that
//! is not the port's (or a pair's). One chain per port (`nq-a…`), jumped to from `nq-arp`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;

use super::rules::chain;

/// Jumped to from the `nat` table's `PREROUTING`: each filtered port's device to its chain.
pub const DISPATCH: &str = "nq-arp";

/// The rules of a port's frames chain.
pub fn port_rules(mac: &str, sources: &[(String, String)]) -> Vec<String> {
    let mut rules = Vec::new();
    let mut macs = BTreeSet::new();
    macs.insert(mac.to_lowercase());
    // 0.0.0.0: a DHCP client's probe of the address it was offered (RFC 5227).
    let own = [(mac.to_string(), "0.0.0.0".to_string())];
    for (m, ip) in own.iter().chain(sources) {
        let m = m.to_lowercase();
        rules.push(format!(
            "-p ARP --arp-ip-src {ip} --arp-mac-src {m} -j RETURN"
        ));
        macs.insert(m);
    }
    rules.push("-p ARP -j DROP".into());
    for m in macs {
        rules.push(format!("-s {m} -j RETURN"));
    }
    rules.push("-j DROP".into());
    rules
}

/// The `nat` table's restore text bringing the kernel from `before` to `after` (port id ->
/// (device, rules)); on `full`, the dispatch is written whole and any chain of ours in the
/// kernel that is not wanted goes.
pub async fn restore_text(
    before: &BTreeMap<String, (String, Vec<String>)>,
    after: &BTreeMap<String, (String, Vec<String>)>,
    full: bool,
) -> Result<String> {
    let mut text = String::from("*nat\n");
    for (id, (_, rules)) in after {
        if full || before.get(id).map(|b| &b.1) != Some(rules) {
            text.push_str(&format!(":{} RETURN\n", chain('a', id)));
            for r in rules {
                text.push_str(&format!("-A {} {r}\n", chain('a', id)));
            }
        }
    }
    let line = |id: &String, device: &String| format!("-i {device} -j {}", chain('a', id));
    if full {
        text.push_str(&format!(":{DISPATCH} RETURN\n"));
        for (id, (device, _)) in after {
            text.push_str(&format!("-A {DISPATCH} {}\n", line(id, device)));
        }
    } else {
        for (id, (device, _)) in before {
            if after.get(id).map(|a| &a.0) != Some(device) {
                text.push_str(&format!("-D {DISPATCH} {}\n", line(id, device)));
            }
        }
        for (id, (device, _)) in after {
            if before.get(id).map(|b| &b.0) != Some(device) {
                text.push_str(&format!("-A {DISPATCH} {}\n", line(id, device)));
            }
        }
    }
    let mut gone: BTreeSet<String> = before
        .keys()
        .filter(|id| !after.contains_key(*id))
        .map(|id| chain('a', id))
        .collect();
    if full {
        let keep: BTreeSet<String> = after.keys().map(|id| chain('a', id)).collect();
        let saved = super::run("ebtables-save", &["-t", "nat"], None).await?;
        gone.extend(
            saved
                .lines()
                .filter_map(|l| l.strip_prefix(':'))
                .filter_map(|l| l.split_whitespace().next())
                .filter(|n| n.len() == chain('a', "").len() + 10 && n.starts_with(&chain('a', "")))
                .filter(|n| !keep.contains(*n))
                .map(str::to_string),
        );
    }
    for name in &gone {
        text.push_str(&format!(":{name} RETURN\n"));
    }
    for name in &gone {
        text.push_str(&format!("-X {name}\n"));
    }
    Ok(text)
}

/// The `nat` table's base: the dispatch chain and the jump to it, when missing.
pub async fn start() -> Result<()> {
    let saved = super::run("ebtables-save", &["-t", "nat"], None).await?;
    let mut text = String::from("*nat\n");
    if !saved.contains(&format!(":{DISPATCH} ")) {
        text.push_str(&format!(":{DISPATCH} RETURN\n"));
    }
    if !saved.contains(&format!("-A PREROUTING -j {DISPATCH}")) {
        text.push_str(&format!("-A PREROUTING -j {DISPATCH}\n"));
    }
    if text != "*nat\n" {
        super::run("ebtables-restore", &["--noflush"], Some(&text)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_only_for_the_ports_addresses_frames_only_from_its_macs() {
        let rules = port_rules(
            "FA:16:3E:00:00:01",
            &[
                ("fa:16:3e:00:00:01".into(), "10.0.0.5".into()),
                ("fa:16:3e:00:00:02".into(), "10.9.0.0/24".into()),
            ],
        );
        assert_eq!(
            rules,
            [
                "-p ARP --arp-ip-src 0.0.0.0 --arp-mac-src fa:16:3e:00:00:01 -j RETURN",
                "-p ARP --arp-ip-src 10.0.0.5 --arp-mac-src fa:16:3e:00:00:01 -j RETURN",
                "-p ARP --arp-ip-src 10.9.0.0/24 --arp-mac-src fa:16:3e:00:00:02 -j RETURN",
                "-p ARP -j DROP",
                "-s fa:16:3e:00:00:01 -j RETURN",
                "-s fa:16:3e:00:00:02 -j RETURN",
                "-j DROP",
            ]
        );
    }
}

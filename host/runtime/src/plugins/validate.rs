//! Checks that a driver's answers are well-formed before the host believes them.

use std::net::IpAddr;

use ipnet::IpNet;

use neutrino_model::{BindContext, BindDecision, Description, Op};

use neutrino_sdk::names::{IFNAMSIZ_MAX as MAX_IFNAME, is_valid_ifname as ifname_ok};
use neutrino_sdk::{valid_mac as mac_ok, valid_mtu};

fn namespace_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0'])
}

/// vif types are short tokens (`ovs`, `bridge`, `vhostuser`, ...).
fn token_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn json_ok(s: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok()
}

/// A decision must name an offered segment, a vif type, JSON details and a reason to pass.
pub fn bind_decision(ctx: &BindContext, d: &BindDecision) -> Result<(), String> {
    let offered = |id: &str| ctx.segments_to_bind.iter().any(|s| s.id == id);
    match d {
        BindDecision::Bound(b) => {
            if !offered(&b.segment_id) {
                return Err(format!("bound segment {:?} was not offered", b.segment_id));
            }
            if !token_ok(&b.vif_type) {
                return Err(format!("vif-type {:?} is not a vif type", b.vif_type));
            }
            for (k, v) in &b.vif_details {
                if k.is_empty() || !json_ok(v) {
                    return Err(format!(
                        "vif-details {k:?} = {v:?} is not a key with a JSON value"
                    ));
                }
            }
            Ok(())
        }
        BindDecision::ContinueWith(c) => {
            if !offered(&c.segment_id) {
                return Err(format!(
                    "continued from segment {:?}, which was not offered",
                    c.segment_id
                ));
            }
            if c.next_segments.is_empty() || c.next_segments.iter().any(|s| s.id.is_empty()) {
                return Err("continue-with needs next segments with ids".into());
            }
            Ok(())
        }
        BindDecision::Pass(reason) if reason.trim().is_empty() => {
            Err("pass without a reason".into())
        }
        BindDecision::Pass(_) => Ok(()),
    }
}

/// A description must name the driver, its agent type, and something it supports.
pub fn description(d: &Description) -> Result<(), String> {
    if !token_ok(&d.name) {
        return Err(format!(
            "name {:?} must be a short token (letters, digits, - and _)",
            d.name
        ));
    }
    if semver::Version::parse(&d.version).is_err() {
        return Err(format!("version {:?} is not semver", d.version));
    }
    if d.agent_type.trim().is_empty() {
        return Err("agent-type is empty".into());
    }
    if d.vnic_types.is_empty() || d.network_types.is_empty() {
        return Err("it supports no vnic type or no network type".into());
    }
    if d.vif_types.is_empty() || !d.vif_types.iter().all(|t| token_ok(t)) {
        return Err(format!(
            "vif-types {:?} must be non-empty tokens",
            d.vif_types
        ));
    }
    if let Some(p) = d
        .capabilities
        .link_prefixes
        .iter()
        .find(|p| p.is_empty() || p.len() >= MAX_IFNAME)
    {
        return Err(format!("link prefix {p:?} leaves no room for a name"));
    }
    Ok(())
}

/// Every name, address and number in a plan must be usable by the kernel.
pub fn plan(plan: &[Op]) -> Result<(), String> {
    let mut problems = Vec::new();
    for (i, op) in plan.iter().enumerate() {
        let mut bad = |what: String| problems.push(format!("op {i}: {what}"));
        let mut name = |n: &str| {
            if !ifname_ok(n) {
                bad(format!(
                    "{n:?} is not an interface name (1-15 bytes, no / : or spaces)"
                ))
            }
        };
        match op {
            Op::EnsureNamespace(ns) | Op::RemoveNamespace(ns) => {
                if !namespace_ok(ns) {
                    bad(format!("{ns:?} is not a namespace name"));
                }
            }
            Op::EnsureBridge(b) => name(&b.name),
            Op::EnsureVeth(v) => {
                name(&v.name);
                name(&v.peer);
            }
            Op::AttachToBridge(a) => {
                name(&a.link);
                name(&a.bridge);
            }
            Op::SetLink(l) => name(&l.name),
            Op::EnsureVxlan(v) => name(&v.name),
            Op::EnsureVlan(v) => {
                name(&v.name);
                name(&v.parent);
            }
            Op::EnsureMacvlan(m) => {
                name(&m.name);
                name(&m.parent);
            }
            Op::EnsureAddress(a) => name(&a.link),
            Op::EnsureRoute(r) => {
                if let Some(d) = &r.device {
                    name(d);
                }
            }
            Op::EnsureOvsBridge(b) => name(&b.name),
            Op::EnsureOvsPort(p) => {
                name(&p.bridge);
                name(&p.name);
            }
            Op::RemoveOvsPort(p) => {
                name(&p.bridge);
                name(&p.name);
            }
            Op::RemoveLink(l) => name(&l.name),
        }
        let mut bad = |what: String| problems.push(format!("op {i}: {what}"));
        match op {
            Op::EnsureVeth(v) => {
                if let Some(mac) = v.peer_mac.as_deref().filter(|m| !mac_ok(m)) {
                    bad(format!("{mac:?} is not a MAC address"));
                }
                mtu(v.mtu, &mut bad);
            }
            Op::SetLink(l) => {
                if let Some(mac) = l.mac.as_deref().filter(|m| !mac_ok(m)) {
                    bad(format!("{mac:?} is not a MAC address"));
                }
                mtu(l.mtu, &mut bad);
            }
            Op::EnsureMacvlan(m) => {
                if let Some(mac) = m.mac.as_deref().filter(|m| !mac_ok(m)) {
                    bad(format!("{mac:?} is not a MAC address"));
                }
                mtu(m.mtu, &mut bad);
            }
            Op::EnsureBridge(b) => mtu(b.mtu, &mut bad),
            Op::EnsureVlan(v) => {
                if !(1..=4094).contains(&v.vlan_id) {
                    bad(format!("VLAN {} is outside 1-4094", v.vlan_id));
                }
                mtu(v.mtu, &mut bad);
            }
            Op::EnsureVxlan(v) => {
                if v.vni == 0 || v.vni >= 1 << 24 {
                    bad(format!("VNI {} is outside 1-16777215", v.vni));
                }
                for ip in [&v.local_ip, &v.group].into_iter().flatten() {
                    if ip.parse::<IpAddr>().is_err() {
                        bad(format!("{ip:?} is not an IP address"));
                    }
                }
                mtu(v.mtu, &mut bad);
            }
            Op::EnsureAddress(a) if a.cidr.parse::<IpNet>().is_err() => {
                bad(format!("{:?} is not address/prefix", a.cidr));
            }
            Op::EnsureRoute(r) => {
                if r.destination != "default" && r.destination.parse::<IpNet>().is_err() {
                    bad(format!("{:?} is not a destination", r.destination));
                }
                if let Some(gw) = r
                    .gateway
                    .as_deref()
                    .filter(|g| g.parse::<IpAddr>().is_err())
                {
                    bad(format!("{gw:?} is not a gateway address"));
                }
            }
            Op::EnsureOvsPort(p) => {
                if let Some(tag) = p.tag.filter(|t| *t > 4095) {
                    bad(format!("tag {tag} is outside 0-4095"));
                }
                if p.external_ids.iter().any(|(k, _)| k.is_empty()) {
                    bad("external-ids with an empty key".into());
                }
            }
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn mtu(mtu: Option<u32>, bad: &mut dyn FnMut(String)) {
    if let Some(m) = mtu.filter(|m| !valid_mtu(*m)) {
        bad(format!("MTU {m} is outside 68-65535"));
    }
}

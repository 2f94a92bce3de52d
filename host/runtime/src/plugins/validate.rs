//! Checks that a driver's answers are well-formed before the host believes them.
//!
//! Every string a driver returns is bounded and every name follows one grammar, so nothing a
//! driver says can fill the database, the API's answers or the log, or be read by the kernel,
//! `ip netns` or `ovs-vsctl` as something other than a name. An answer over a bound is
//! malformed; the error quotes at most [`QUOTE_BYTES`] of it.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use neutrino_model::{BindContext, BindDecision, Description, DriverError, Op};

use neutrino_sdk::{valid_mac as mac_ok, valid_mtu};

/// Longest link name: the kernel's IFNAMSIZ (16) less its NUL. OVS bridges and ports are
/// kernel devices too, so the same limit applies to them.
pub const MAX_LINK_NAME: usize = 15;
/// Longest namespace name. `ip netns` allows any file name (255 bytes); Neutron's longest,
/// `qrouter-<uuid>`, is 44, so 64 leaves room for any naming rule and keeps paths short.
pub const MAX_NAMESPACE_NAME: usize = 64;
/// Most operations in one plan. A port or network needs about ten (the bundled drivers'
/// longest plan has 9); 1,024 leaves room for any honest driver, while 200,000 would make the
/// agent spend minutes on one plan.
pub const MAX_PLAN_OPS: usize = 1024;
/// Most bytes of all the strings of one answer together (a plan, a decision). 1,024 ops of
/// about 200 bytes; a decision is far smaller. Everything past it is refused, never stored.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// Longest pass reason or driver error message. A reason is stored with every bind and shown
/// in the port's binding; a few sentences are enough to say why.
pub const MAX_REASON_BYTES: usize = 2048;
/// Most `vif-details` entries. Neutron's richest drivers set about ten.
pub const MAX_VIF_DETAILS: usize = 32;
/// Longest `vif-details` key (Neutron's are identifiers of under 30 characters).
pub const MAX_VIF_DETAIL_KEY: usize = 64;
/// Longest `vif-details` value, and all of them together: they go into every port response
/// and every port row, so a port's details stay a few KiB at most.
pub const MAX_VIF_DETAIL_VALUE: usize = 1024;
pub const MAX_VIF_DETAILS_BYTES: usize = 4096;
/// Most segments one `continue-with` may hand down (Neutron allocates one dynamic segment).
pub const MAX_NEXT_SEGMENTS: usize = 16;
/// Longest id or other short token a driver returns (segment ids, vif types, physical
/// network names, addresses). A UUID is 36.
pub const MAX_TOKEN: usize = 64;
/// Most OVS `external_ids` of one port, and their key and value lengths (Neutron sets four:
/// iface-id, iface-status, attached-mac, vm-uuid).
pub const MAX_EXTERNAL_IDS: usize = 16;
pub const MAX_EXTERNAL_ID_VALUE: usize = 255;
/// How much of a refused value an error message quotes.
pub const QUOTE_BYTES: usize = 80;

/// vif types that mean "not bound": a bound port never carries them.
pub const NOT_BOUND_VIF_TYPES: [&str; 2] = ["binding_failed", "unbound"];

/// `s` cut to at most `max` bytes on a character boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A value for an error message: debug-quoted (control characters escaped) and cut short,
/// saying how long it really was.
pub fn quote(s: &str) -> String {
    if s.len() <= QUOTE_BYTES {
        format!("{s:?}")
    } else {
        format!("{:?}... ({} bytes)", cut(s, QUOTE_BYTES), s.len())
    }
}

/// The one grammar of names: printable ASCII other than `/` (a path), `:` (the kernel's alias
/// separator), quotes and backslash (quoting in ovs-vsctl and shells); not `.` or `..`; not
/// starting with `-`, so that no tool reads it as an option.
fn name_grammar_ok(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name != "."
        && name != ".."
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"/:\"'`\\".contains(&b))
}

/// A link, OVS bridge or OVS port name the kernel and OVS accept and no tool misreads.
pub fn link_name_ok(name: &str) -> bool {
    name_grammar_ok(name, MAX_LINK_NAME)
}

/// A namespace name: the same grammar, so `/run/netns/<name>` is always a file in
/// `/run/netns`.
pub fn namespace_name_ok(name: &str) -> bool {
    name_grammar_ok(name, MAX_NAMESPACE_NAME)
}

/// vif types are short tokens (`ovs`, `bridge`, `vhostuser`, ...).
/// A driver's name: what `describe` must answer, `mechanism_drivers` lists and `<name>.wasm`
/// is the file of (`neutrino plugin new` refuses any other).
pub fn driver_name_ok(name: &str) -> bool {
    token_ok(name)
}

fn token_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_TOKEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn json_ok(s: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok()
}

/// A driver's own error, bounded: a message past [`MAX_REASON_BYTES`] makes the answer
/// malformed (quoted short), so it is never stored or shown whole.
pub fn driver_error(e: &DriverError) -> Result<(), String> {
    let m = match e {
        DriverError::InvalidInput(m)
        | DriverError::Unsupported(m)
        | DriverError::Conflict(m)
        | DriverError::RetryLater(m)
        | DriverError::Internal(m) => m,
    };
    if m.len() > MAX_REASON_BYTES {
        return Err(format!(
            "error message of {} bytes is over the bound of {MAX_REASON_BYTES}: {}",
            m.len(),
            quote(m)
        ));
    }
    Ok(())
}

/// A decision must name an offered segment, a vif type the driver declared, bounded JSON
/// details with distinct keys, and a bounded reason to pass.
pub fn bind_decision(
    ctx: &BindContext,
    described: &Description,
    d: &BindDecision,
) -> Result<(), String> {
    let offered = |id: &str| ctx.segments_to_bind.iter().any(|s| s.id == id);
    match d {
        BindDecision::Bound(b) => {
            if !offered(&b.segment_id) {
                return Err(format!(
                    "bound segment {} was not offered",
                    quote(&b.segment_id)
                ));
            }
            if NOT_BOUND_VIF_TYPES.contains(&b.vif_type.as_str()) {
                return Err(format!(
                    "vif-type {} means not bound; a bound port cannot carry it",
                    quote(&b.vif_type)
                ));
            }
            if !token_ok(&b.vif_type) {
                return Err(format!("vif-type {} is not a vif type", quote(&b.vif_type)));
            }
            if !described.vif_types.contains(&b.vif_type) {
                return Err(format!(
                    "vif-type {} is not among the vif-types it declared {:?}",
                    quote(&b.vif_type),
                    described.vif_types
                ));
            }
            vif_details(&b.vif_details)
        }
        BindDecision::ContinueWith(c) => {
            if !offered(&c.segment_id) {
                return Err(format!(
                    "continued from segment {}, which was not offered",
                    quote(&c.segment_id)
                ));
            }
            if c.next_segments.is_empty() || c.next_segments.iter().any(|s| s.id.is_empty()) {
                return Err("continue-with needs next segments with ids".into());
            }
            if c.next_segments.len() > MAX_NEXT_SEGMENTS {
                return Err(format!(
                    "continue-with hands down {} segments, over the bound of {MAX_NEXT_SEGMENTS}",
                    c.next_segments.len()
                ));
            }
            for s in &c.next_segments {
                for text in [Some(&s.id), s.physical_network.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    if text.len() > MAX_TOKEN {
                        return Err(format!(
                            "next segment field {} is over the bound of {MAX_TOKEN} bytes",
                            quote(text)
                        ));
                    }
                }
            }
            Ok(())
        }
        BindDecision::Pass(reason) if reason.trim().is_empty() => {
            Err("pass without a reason".into())
        }
        BindDecision::Pass(reason) if reason.len() > MAX_REASON_BYTES => Err(format!(
            "pass reason of {} bytes is over the bound of {MAX_REASON_BYTES}: {}",
            reason.len(),
            quote(reason)
        )),
        BindDecision::Pass(_) => Ok(()),
    }
}

/// `vif-details`: at most [`MAX_VIF_DETAILS`] distinct keys, each a bounded printable key
/// with a bounded JSON value, [`MAX_VIF_DETAILS_BYTES`] in all.
fn vif_details(details: &[(String, String)]) -> Result<(), String> {
    if details.len() > MAX_VIF_DETAILS {
        return Err(format!(
            "{} vif-details, over the bound of {MAX_VIF_DETAILS}",
            details.len()
        ));
    }
    let total: usize = details.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_VIF_DETAILS_BYTES {
        return Err(format!(
            "vif-details of {total} bytes, over the bound of {MAX_VIF_DETAILS_BYTES}"
        ));
    }
    let mut seen = BTreeSet::new();
    for (k, v) in details {
        if k.is_empty() || k.len() > MAX_VIF_DETAIL_KEY || !k.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(format!(
                "vif-details key {} is not a printable key of 1-{MAX_VIF_DETAIL_KEY} bytes",
                quote(k)
            ));
        }
        if !seen.insert(k.as_str()) {
            return Err(format!("vif-details key {} appears twice", quote(k)));
        }
        if v.len() > MAX_VIF_DETAIL_VALUE {
            return Err(format!(
                "vif-details {} has a value of {} bytes, over the bound of {MAX_VIF_DETAIL_VALUE}",
                quote(k),
                v.len()
            ));
        }
        if !json_ok(v) {
            return Err(format!(
                "vif-details {} = {} is not a key with a JSON value",
                quote(k),
                quote(v)
            ));
        }
    }
    Ok(())
}

/// Most entries in each list of a description.
const MAX_DESCRIPTION_LIST: usize = 32;

/// A grant pattern of link-like names: an exact name, or a prefix ending in `*` (`*` alone
/// only where `allow_star`).
fn pattern_ok(p: &str, allow_star: bool) -> bool {
    match p.strip_suffix('*') {
        Some("") => allow_star,
        Some(prefix) => link_name_ok(prefix) && prefix.len() < MAX_LINK_NAME,
        None => link_name_ok(p),
    }
}

/// A description must name the driver, its agent type, and something it supports; its grant
/// must be made of names in the one grammar.
pub fn description(d: &Description) -> Result<(), String> {
    if !token_ok(&d.name) {
        return Err(format!(
            "name {} must be a short token (letters, digits, - and _)",
            quote(&d.name)
        ));
    }
    if d.version.len() > MAX_TOKEN || semver::Version::parse(&d.version).is_err() {
        return Err(format!("version {} is not semver", quote(&d.version)));
    }
    if d.agent_type.trim().is_empty()
        || d.agent_type.len() > MAX_TOKEN
        || d.agent_type.chars().any(char::is_control)
    {
        return Err(format!(
            "agent-type {} must be 1-{MAX_TOKEN} printable bytes",
            quote(&d.agent_type)
        ));
    }
    if d.vnic_types.is_empty() || d.network_types.is_empty() {
        return Err("it supports no vnic type or no network type".into());
    }
    let c = &d.capabilities;
    for (what, list) in [
        ("vif-types", &d.vif_types),
        ("link prefixes", &c.link_prefixes),
        ("OVS bridges", &c.ovs_bridges),
        ("namespace prefixes", &c.namespace_prefixes),
        ("physical interfaces", &c.physical_interfaces),
    ] {
        if list.len() > MAX_DESCRIPTION_LIST {
            return Err(format!(
                "{} {what}, over the bound of {MAX_DESCRIPTION_LIST}",
                list.len()
            ));
        }
    }
    if d.vif_types.is_empty() || !d.vif_types.iter().all(|t| token_ok(t)) {
        return Err(format!(
            "vif-types {:?} must be non-empty tokens",
            d.vif_types
        ));
    }
    if let Some(t) = d
        .vif_types
        .iter()
        .find(|t| NOT_BOUND_VIF_TYPES.contains(&t.as_str()))
    {
        return Err(format!(
            "vif-type {t:?} means not bound; a driver cannot declare it"
        ));
    }
    if let Some(p) = c
        .link_prefixes
        .iter()
        .find(|p| !link_name_ok(p) || p.len() >= MAX_LINK_NAME)
    {
        return Err(format!(
            "link prefix {} is not the start of an interface name with room for more",
            quote(p)
        ));
    }
    if let Some(p) = c
        .namespace_prefixes
        .iter()
        .find(|p| !namespace_name_ok(p) || p.starts_with('.') || p.len() >= MAX_NAMESPACE_NAME)
    {
        return Err(format!(
            "namespace prefix {} is not the start of a namespace name (printable, no / or \
             leading . or -)",
            quote(p)
        ));
    }
    if let Some(p) = c.ovs_bridges.iter().find(|p| !pattern_ok(p, false)) {
        return Err(format!(
            "OVS bridge {} is not a bridge name or a prefix ending in *",
            quote(p)
        ));
    }
    if let Some(p) = c
        .physical_interfaces
        .iter()
        .find(|p| p.as_str() != neutrino_sdk::names::MAPPED_INTERFACES && !pattern_ok(p, true))
    {
        return Err(format!(
            "physical interface {} is not an interface name, a prefix ending in *, * or {}",
            quote(p),
            neutrino_sdk::names::MAPPED_INTERFACES
        ));
    }
    Ok(())
}

/// The total bytes of the strings of a plan (what it costs to keep, send and render).
fn plan_bytes(plan: &[Op]) -> usize {
    fn o(s: &Option<String>) -> usize {
        s.as_ref().map_or(0, String::len)
    }
    plan.iter()
        .map(|op| match op {
            Op::EnsureNamespace(n) | Op::RemoveNamespace(n) => n.len(),
            Op::EnsureBridge(b) => b.name.len(),
            Op::EnsureVeth(v) => {
                v.name.len() + v.peer.len() + o(&v.peer_namespace) + o(&v.peer_mac)
            }
            Op::AttachToBridge(a) => a.link.len() + a.bridge.len(),
            Op::SetLink(l) => l.name.len() + o(&l.namespace) + o(&l.mac),
            Op::EnsureVxlan(v) => {
                v.name.len() + o(&v.local_ip) + o(&v.group) + o(&v.underlay_device)
            }
            Op::EnsureVlan(v) => v.name.len() + v.parent.len(),
            Op::EnsureMacvlan(m) => m.name.len() + m.parent.len() + o(&m.namespace) + o(&m.mac),
            Op::EnsureAddress(a) => a.link.len() + o(&a.namespace) + a.cidr.len(),
            Op::EnsureRoute(r) => {
                o(&r.namespace) + r.destination.len() + o(&r.gateway) + o(&r.device)
            }
            Op::EnsureOvsBridge(b) => b.name.len() + b.datapath_type.len(),
            Op::EnsureOvsPort(p) => {
                let peer = match &p.port_type {
                    neutrino_model::OvsPortType::Patch(peer) => peer.len(),
                    _ => 0,
                };
                p.bridge.len()
                    + p.name.len()
                    + peer
                    + p.external_ids
                        .iter()
                        .map(|(k, v)| k.len() + v.len())
                        .sum::<usize>()
            }
            Op::RemoveOvsPort(p) => p.bridge.len() + p.name.len(),
            Op::RemoveLink(l) => l.name.len() + o(&l.namespace),
        })
        .sum()
}

/// Every name, namespace, address and number in a plan must be usable by the kernel, and the
/// plan bounded in operations and bytes.
pub fn plan(plan: &[Op]) -> Result<(), String> {
    if plan.len() > MAX_PLAN_OPS {
        return Err(format!(
            "a plan of {} operations, over the bound of {MAX_PLAN_OPS}",
            plan.len()
        ));
    }
    let bytes = plan_bytes(plan);
    if bytes > MAX_ANSWER_BYTES {
        return Err(format!(
            "a plan of {bytes} bytes, over the bound of {MAX_ANSWER_BYTES}"
        ));
    }
    let mut problems = Vec::new();
    for (i, op) in plan.iter().enumerate() {
        let mut bad = |what: String| problems.push(format!("op {i}: {what}"));
        let mut name = |n: &str| {
            if !link_name_ok(n) {
                bad(format!(
                    "{} is not an interface name (1-15 printable ASCII bytes, no / : quotes or \
                     backslash, not starting with -)",
                    quote(n)
                ))
            }
        };
        match op {
            Op::EnsureNamespace(_) | Op::RemoveNamespace(_) => {}
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
            Op::EnsureVxlan(v) => {
                name(&v.name);
                if let Some(d) = &v.underlay_device {
                    name(d);
                }
            }
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
                if let neutrino_model::OvsPortType::Patch(peer) = &p.port_type {
                    name(peer);
                }
            }
            Op::RemoveOvsPort(p) => {
                name(&p.bridge);
                name(&p.name);
            }
            Op::RemoveLink(l) => name(&l.name),
        }
        let mut bad = |what: String| problems.push(format!("op {i}: {what}"));
        // Every namespace field of every op, by the same rule.
        for ns in op_namespaces(op) {
            if !namespace_name_ok(ns) {
                bad(format!(
                    "{} is not a namespace name (1-{MAX_NAMESPACE_NAME} printable ASCII bytes, \
                     no / : quotes or backslash, not . or .., not starting with -)",
                    quote(ns)
                ));
            }
        }
        match op {
            Op::EnsureVeth(v) => {
                if let Some(mac) = v.peer_mac.as_deref().filter(|m| !mac_ok(m)) {
                    bad(format!("{} is not a MAC address", quote(mac)));
                }
                mtu(v.mtu, &mut bad);
            }
            Op::SetLink(l) => {
                if let Some(mac) = l.mac.as_deref().filter(|m| !mac_ok(m)) {
                    bad(format!("{} is not a MAC address", quote(mac)));
                }
                mtu(l.mtu, &mut bad);
            }
            Op::EnsureMacvlan(m) => {
                if let Some(mac) = m.mac.as_deref().filter(|m| !mac_ok(m)) {
                    bad(format!("{} is not a MAC address", quote(mac)));
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
                        bad(format!("{} is not an IP address", quote(ip)));
                    }
                }
                mtu(v.mtu, &mut bad);
            }
            Op::EnsureAddress(a) if a.cidr.parse::<IpNet>().is_err() => {
                bad(format!("{} is not address/prefix", quote(&a.cidr)));
            }
            Op::EnsureRoute(r) => {
                if r.destination != "default" && r.destination.parse::<IpNet>().is_err() {
                    bad(format!("{} is not a destination", quote(&r.destination)));
                }
                if let Some(gw) = r
                    .gateway
                    .as_deref()
                    .filter(|g| g.parse::<IpAddr>().is_err())
                {
                    bad(format!("{} is not a gateway address", quote(gw)));
                }
            }
            Op::EnsureOvsBridge(b) if !token_ok(&b.datapath_type) => {
                bad(format!(
                    "{} is not a datapath type",
                    quote(&b.datapath_type)
                ));
            }
            Op::EnsureOvsPort(p) => {
                if let Some(tag) = p.tag.filter(|t| *t > 4095) {
                    bad(format!("tag {tag} is outside 0-4095"));
                }
                if p.external_ids.len() > MAX_EXTERNAL_IDS {
                    bad(format!(
                        "{} external-ids, over the bound of {MAX_EXTERNAL_IDS}",
                        p.external_ids.len()
                    ));
                }
                let mut seen = BTreeSet::new();
                for (k, v) in &p.external_ids {
                    if !token_ok(k) {
                        bad(format!(
                            "external-ids key {} is not a token (letters, digits, - and _)",
                            quote(k)
                        ));
                    } else if !seen.insert(k.as_str()) {
                        bad(format!("external-ids key {} appears twice", quote(k)));
                    }
                    if v.len() > MAX_EXTERNAL_ID_VALUE || v.chars().any(char::is_control) {
                        bad(format!(
                            "external-ids {} value {} is not 0-{MAX_EXTERNAL_ID_VALUE} printable bytes",
                            quote(k),
                            quote(v)
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(summary(problems).join("; "))
    }
}

/// Most problems one error lists; a plan of a thousand bad ops says so in a few lines.
pub const MAX_PROBLEMS: usize = 10;

/// The first [`MAX_PROBLEMS`] problems, then how many more there were.
pub fn summary(mut problems: Vec<String>) -> Vec<String> {
    if problems.len() > MAX_PROBLEMS {
        let more = problems.len() - MAX_PROBLEMS;
        problems.truncate(MAX_PROBLEMS);
        problems.push(format!("and {more} more"));
    }
    problems
}

/// The namespace fields of an op (the namespace of `ensure/remove-namespace` included).
pub fn op_namespaces(op: &Op) -> impl Iterator<Item = &str> {
    let ns = match op {
        Op::EnsureNamespace(n) | Op::RemoveNamespace(n) => Some(n),
        Op::EnsureVeth(v) => v.peer_namespace.as_ref(),
        Op::SetLink(l) => l.namespace.as_ref(),
        Op::EnsureMacvlan(m) => m.namespace.as_ref(),
        Op::EnsureAddress(a) => a.namespace.as_ref(),
        Op::EnsureRoute(r) => r.namespace.as_ref(),
        Op::RemoveLink(l) => l.namespace.as_ref(),
        Op::EnsureBridge(_)
        | Op::AttachToBridge(_)
        | Op::EnsureVxlan(_)
        | Op::EnsureVlan(_)
        | Op::EnsureOvsBridge(_)
        | Op::EnsureOvsPort(_)
        | Op::RemoveOvsPort(_) => None,
    };
    ns.map(String::as_str).into_iter()
}

fn mtu(mtu: Option<u32>, bad: &mut dyn FnMut(String)) {
    if let Some(m) = mtu.filter(|m| !valid_mtu(*m)) {
        bad(format!("MTU {m} is outside 68-65535"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neutrino_model::{LinkRef, OvsPortRef};

    #[test]
    fn one_name_grammar() {
        for good in ["eth0", "tap3f1c2a9e-7b", "br-int", "eth1.100", "a"] {
            assert!(link_name_ok(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "--",
            "-x",
            "a/b",
            "a:b",
            "tap\u{b}x",
            "tap\u{1b}[31m",
            "a b",
            "sixteen-chars-xx",
            "ta\"p",
            "t\u{e9}p",
        ] {
            assert!(!link_name_ok(bad), "{bad:?}");
        }
        assert!(namespace_name_ok(
            "qdhcp-9b7e2c1d-55aa-4c3e-8f10-2d4b6a8c0e12"
        ));
        for bad in ["../../proc/1/ns/net", "..", "/proc", "-n", "a\nb"] {
            assert!(!namespace_name_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn every_namespace_field_is_checked() {
        let plan = vec![
            Op::RemoveLink(LinkRef {
                name: "tap1".into(),
                namespace: Some("../../proc/1/ns/net".into()),
            }),
            Op::EnsureAddress(neutrino_model::AddressSpec {
                link: "tap1".into(),
                namespace: Some("..".into()),
                cidr: "10.0.0.1/24".into(),
            }),
            Op::RemoveOvsPort(OvsPortRef {
                bridge: "br-int".into(),
                name: "--".into(),
            }),
        ];
        let e = plan_check(&plan);
        assert!(
            e.contains("op 0: \"../../proc/1/ns/net\" is not a namespace name"),
            "{e}"
        );
        assert!(e.contains("op 1: \"..\" is not a namespace name"), "{e}");
        assert!(e.contains("op 2: \"--\" is not an interface name"), "{e}");
    }

    fn plan_check(p: &[Op]) -> String {
        plan(p).unwrap_err()
    }

    #[test]
    fn plans_are_bounded_and_errors_short() {
        let op = Op::RemoveLink(LinkRef {
            name: "tap\u{b}".into(),
            namespace: None,
        });
        let e = plan_check(&vec![op.clone(); MAX_PLAN_OPS + 1]);
        assert!(e.contains("over the bound of 1024"), "{e}");
        let e = plan_check(&vec![op; 500]);
        assert!(e.ends_with("and 490 more"), "{e}");
        assert!(e.len() < 2000, "{}", e.len());
    }

    #[test]
    fn vif_details_are_bounded_and_distinct() {
        let d = |details: Vec<(&str, String)>| {
            vif_details(
                &details
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect::<Vec<_>>(),
            )
        };
        assert!(d(vec![("port_filter", "true".into())]).is_ok());
        let e = d(vec![("a", "1".into()), ("a", "2".into())]).unwrap_err();
        assert!(e.contains("appears twice"), "{e}");
        let huge = format!("\"{}\"", "x".repeat(50 << 20));
        let e = d(vec![("a", huge)]).unwrap_err();
        assert!(e.len() < 200, "{e}");
    }

    #[test]
    fn quote_cuts_and_escapes() {
        let q = quote(&"\u{1b}".repeat(1000));
        assert!(q.contains("(1000 bytes)"), "{q}");
        assert!(!q.contains('\u{1b}'));
    }
}

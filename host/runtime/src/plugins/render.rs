//! Plans as text, one operation a line: for dry runs, logs, the API and snapshot tests.

use neutrino_model::{MacvlanMode, Op, OvsPortType};

fn ns(namespace: &Option<String>) -> String {
    namespace
        .as_deref()
        .map(|n| format!("@{n}"))
        .unwrap_or_default()
}

fn opt<T: std::fmt::Display>(key: &str, value: &Option<T>) -> String {
    value
        .as_ref()
        .map(|v| format!(" {key}={v}"))
        .unwrap_or_default()
}

/// One operation as a line, e.g. `ensure-veth tapX <-> eth0@inst-1 mac=fa:16:3e:.. mtu=1500`.
pub fn op(op: &Op) -> String {
    match op {
        Op::EnsureNamespace(n) => format!("ensure-namespace {n}"),
        Op::RemoveNamespace(n) => format!("remove-namespace {n}"),
        Op::EnsureBridge(b) => format!("ensure-bridge {}{}", b.name, opt("mtu", &b.mtu)),
        Op::EnsureVeth(v) => format!(
            "ensure-veth {} <-> {}{}{}{}",
            v.name,
            v.peer,
            ns(&v.peer_namespace),
            opt("mac", &v.peer_mac),
            opt("mtu", &v.mtu)
        ),
        Op::AttachToBridge(a) => format!("attach {} -> {}", a.link, a.bridge),
        Op::SetLink(l) => format!(
            "set-link {}{} {}{}{}",
            l.name,
            ns(&l.namespace),
            if l.up { "up" } else { "down" },
            opt("mtu", &l.mtu),
            opt("mac", &l.mac)
        ),
        Op::EnsureVxlan(v) => format!(
            "ensure-vxlan {} vni={}{}{}{} dstport={}{}",
            v.name,
            v.vni,
            opt("local", &v.local_ip),
            opt("group", &v.group),
            opt("dev", &v.underlay_device),
            v.dst_port,
            opt("mtu", &v.mtu)
        ),
        Op::EnsureVlan(v) => format!(
            "ensure-vlan {} on {} id={}{}",
            v.name,
            v.parent,
            v.vlan_id,
            opt("mtu", &v.mtu)
        ),
        Op::EnsureMacvlan(m) => format!(
            "ensure-macvlan {}{} on {} mode={}{}{}",
            m.name,
            ns(&m.namespace),
            m.parent,
            match m.mode {
                MacvlanMode::Bridge => "bridge",
                MacvlanMode::Vepa => "vepa",
                MacvlanMode::Private => "private",
                MacvlanMode::Passthru => "passthru",
            },
            opt("mac", &m.mac),
            opt("mtu", &m.mtu)
        ),
        Op::EnsureAddress(a) => format!(
            "ensure-address {} on {}{}",
            a.cidr,
            a.link,
            ns(&a.namespace)
        ),
        Op::EnsureRoute(r) => format!(
            "ensure-route{} {}{}{}",
            ns(&r.namespace),
            r.destination,
            opt("via", &r.gateway),
            opt("dev", &r.device)
        ),
        Op::EnsureOvsBridge(b) => {
            format!("ensure-ovs-bridge {} datapath={}", b.name, b.datapath_type)
        }
        Op::EnsureOvsPort(p) => {
            let kind = match &p.port_type {
                OvsPortType::System => "system".to_string(),
                OvsPortType::Internal => "internal".to_string(),
                OvsPortType::Patch(peer) => format!("patch(peer={peer})"),
            };
            let ids: Vec<String> = p
                .external_ids
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!(
                "ensure-ovs-port {} on {} type={}{} external_ids={{{}}}",
                p.name,
                p.bridge,
                kind,
                opt("tag", &p.tag),
                ids.join(",")
            )
        }
        Op::RemoveOvsPort(p) => format!("remove-ovs-port {} from {}", p.name, p.bridge),
        Op::RemoveLink(l) => format!("remove-link {}{}", l.name, ns(&l.namespace)),
    }
}

/// A whole plan, one line per operation.
pub fn plan(ops: &[Op]) -> String {
    ops.iter().map(op).collect::<Vec<_>>().join("\n")
}

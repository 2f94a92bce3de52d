//! Drift: what the plans applied on this host made, compared with what the kernel and Open
//! vSwitch hold now. A device removed by hand (`ip link del` of a tap or of a network's
//! bridge), a port detached from its bridge or set down, an OVS port gone: each makes the
//! ports whose plans made it "drifted", and the agent reports them DOWN and applies their plans
//! again (see `Engine::check_wiring`).
//!
//! Only what one listing shows cheaply is compared: links (existence, kind, bridge, up) and
//! OVS ports. Addresses and routes are not.

use std::collections::{BTreeMap, BTreeSet};

use neutrino_model::Op;

use super::executor::{Executor, LinkInfo};

/// The links of the namespaces looked at and the ports of the OVS bridges, at one moment.
#[derive(Debug, Default)]
pub struct Observed {
    /// Namespace (None: the host's) -> its links; a namespace that could not be listed has
    /// none.
    links: BTreeMap<Option<String>, Vec<LinkInfo>>,
    /// OVS bridge -> its ports; a bridge that could not be listed has none.
    ovs_ports: BTreeMap<String, BTreeSet<String>>,
}

impl Observed {
    /// Lists the host's links, the links of the namespaces that `ops` touch when
    /// `namespaces` (one netlink connection each: done at full resyncs), and the ports of the
    /// OVS bridges they touch.
    pub async fn list<'a>(
        executor: &Executor,
        ops: impl Iterator<Item = &'a Op>,
        namespaces: bool,
    ) -> anyhow::Result<Observed> {
        let mut wanted_ns: BTreeSet<String> = BTreeSet::new();
        let mut bridges: BTreeSet<String> = BTreeSet::new();
        for op in ops {
            match op {
                Op::EnsureVeth(v) => wanted_ns.extend(v.peer_namespace.clone()),
                Op::SetLink(l) => wanted_ns.extend(l.namespace.clone()),
                Op::EnsureMacvlan(m) => wanted_ns.extend(m.namespace.clone()),
                Op::EnsureOvsPort(p) => {
                    bridges.insert(p.bridge.clone());
                }
                _ => {}
            }
        }
        let mut observed = Observed::default();
        observed.links.insert(None, executor.links(None).await?);
        if namespaces {
            for ns in wanted_ns {
                let links = executor.links(Some(&ns)).await.unwrap_or_default();
                observed.links.insert(Some(ns), links);
            }
        }
        for bridge in bridges {
            let ports = executor.ovs_ports(&bridge).await.unwrap_or_default();
            observed
                .ovs_ports
                .insert(bridge, ports.into_iter().map(|p| p.name).collect());
        }
        Ok(observed)
    }

    /// The link `name` in `namespace`: `Err(())` when that namespace was not looked at.
    fn link(&self, namespace: Option<&String>, name: &str) -> Result<Option<&LinkInfo>, ()> {
        let links = self.links.get(&namespace.cloned()).ok_or(())?;
        Ok(links.iter().find(|l| l.name == name))
    }

    /// What of `plan` is missing or different now, as a sentence; None when nothing is.
    pub fn missing(&self, plan: &[Op]) -> Option<String> {
        plan.iter().find_map(|op| self.missing_op(op))
    }

    fn missing_op(&self, op: &Op) -> Option<String> {
        let place = |ns: Option<&String>| match ns {
            Some(ns) => format!("in namespace {ns}"),
            None => "on the host".to_string(),
        };
        let kind_of = |ns: Option<&String>, name: &str, kind: &str| -> Option<String> {
            match self.link(ns, name) {
                Err(()) => None,
                Ok(None) => Some(format!("{kind} {name} is gone {}", place(ns))),
                Ok(Some(l)) if l.kind.as_deref() != Some(kind) => Some(format!(
                    "{name} {} is a {}, not a {kind}",
                    place(ns),
                    l.kind.as_deref().unwrap_or("plain device")
                )),
                Ok(Some(_)) => None,
            }
        };
        match op {
            Op::EnsureBridge(b) => kind_of(None, &b.name, "bridge"),
            Op::EnsureVeth(v) => kind_of(None, &v.name, "veth")
                .or_else(|| kind_of(v.peer_namespace.as_ref(), &v.peer, "veth")),
            Op::EnsureVxlan(v) => kind_of(None, &v.name, "vxlan"),
            Op::EnsureVlan(v) => kind_of(None, &v.name, "vlan"),
            Op::EnsureMacvlan(m) => kind_of(m.namespace.as_ref(), &m.name, "macvlan"),
            Op::AttachToBridge(a) => match self.link(None, &a.link) {
                Ok(Some(l)) if l.controller.as_deref() != Some(a.bridge.as_str()) => {
                    Some(format!("{} is not a port of {}", a.link, a.bridge))
                }
                Ok(None) => Some(format!("{} is gone on the host", a.link)),
                _ => None,
            },
            Op::SetLink(l) => match self.link(l.namespace.as_ref(), &l.name) {
                Ok(Some(link)) if l.up && !link.up => Some(format!(
                    "{} {} is down",
                    l.name,
                    place(l.namespace.as_ref())
                )),
                _ => None,
            },
            Op::EnsureOvsPort(p) => self
                .ovs_ports
                .get(&p.bridge)
                .filter(|ports| !ports.contains(&p.name))
                .map(|_| format!("OVS port {} is not on {}", p.name, p.bridge)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neutrino_model::{AttachSpec, BridgeSpec, LinkSpec, VethSpec};

    fn link(name: &str, kind: &str, controller: Option<&str>, up: bool) -> LinkInfo {
        LinkInfo {
            name: name.into(),
            kind: Some(kind.into()),
            controller: controller.map(str::to_string),
            mac: None,
            up,
        }
    }

    fn plan() -> Vec<Op> {
        vec![
            Op::EnsureBridge(BridgeSpec {
                name: "brq1".into(),
                mtu: None,
            }),
            Op::EnsureVeth(VethSpec {
                name: "tap1".into(),
                peer: "eth0".into(),
                peer_namespace: Some("inst-1".into()),
                peer_mac: None,
                mtu: None,
            }),
            Op::AttachToBridge(AttachSpec {
                link: "tap1".into(),
                bridge: "brq1".into(),
            }),
            Op::SetLink(LinkSpec {
                name: "tap1".into(),
                namespace: None,
                up: true,
                mtu: None,
                mac: None,
            }),
        ]
    }

    fn host(links: Vec<LinkInfo>) -> Observed {
        Observed {
            links: BTreeMap::from([(None, links)]),
            ovs_ports: BTreeMap::new(),
        }
    }

    #[test]
    fn what_the_plan_made_is_compared_with_the_kernel() {
        let wired = vec![
            link("brq1", "bridge", None, true),
            link("tap1", "veth", Some("brq1"), true),
        ];
        assert_eq!(host(wired.clone()).missing(&plan()), None);
        // The namespace was not looked at: its peer is not judged.
        let gone_tap = host(vec![link("brq1", "bridge", None, true)]);
        assert_eq!(
            gone_tap.missing(&plan()).as_deref(),
            Some("veth tap1 is gone on the host")
        );
        let gone_bridge = host(vec![link("tap1", "veth", None, true)]);
        assert_eq!(
            gone_bridge.missing(&plan()).as_deref(),
            Some("bridge brq1 is gone on the host")
        );
        let impostor = host(vec![
            link("brq1", "dummy", None, true),
            link("tap1", "veth", Some("brq1"), true),
        ]);
        assert_eq!(
            impostor.missing(&plan()).as_deref(),
            Some("brq1 on the host is a dummy, not a bridge")
        );
        let down = host(vec![
            link("brq1", "bridge", None, true),
            link("tap1", "veth", Some("brq1"), false),
        ]);
        assert_eq!(
            down.missing(&plan()).as_deref(),
            Some("tap1 on the host is down")
        );
        // With the namespace looked at, a missing peer counts.
        let mut no_peer = host(wired);
        no_peer.links.insert(Some("inst-1".into()), vec![]);
        assert_eq!(
            no_peer.missing(&plan()).as_deref(),
            Some("veth eth0 is gone in namespace inst-1")
        );
    }
}

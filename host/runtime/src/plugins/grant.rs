//! Grants: what a driver may touch, and the check of every plan operation against it.
//!
//! A driver declares its capabilities in `describe`; the operator may narrow them (never
//! widen). Every operation of a plan is checked before anything runs; one operation outside
//! the grant rejects the whole plan.

use neutrino_sdk::names;
use serde::{Deserialize, Serialize};

use neutrino_model::{self as model, Op};

/// The effective grant of a loaded driver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Link names must start with one of these.
    pub link_prefixes: Vec<String>,
    /// OVS bridges: exact names, or prefixes written `br-*`.
    pub ovs_bridges: Vec<String>,
    /// Namespaces (other than the call's attachment namespace) must start with one of these.
    pub namespace_prefixes: Vec<String>,
    /// Physical interfaces: exact names, `eth*`-style prefixes, or `*`.
    pub physical_interfaces: Vec<String>,
}

/// Operator narrowing of a driver's grant; a `None` dimension keeps what the driver declared.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantNarrowing {
    pub link_prefixes: Option<Vec<String>>,
    pub ovs_bridges: Option<Vec<String>>,
    pub namespace_prefixes: Option<Vec<String>>,
    pub physical_interfaces: Option<Vec<String>>,
}

impl From<&model::Grant> for Grant {
    fn from(g: &model::Grant) -> Self {
        Grant {
            link_prefixes: g.link_prefixes.clone(),
            ovs_bridges: g.ovs_bridges.clone(),
            namespace_prefixes: g.namespace_prefixes.clone(),
            physical_interfaces: g.physical_interfaces.clone(),
        }
    }
}

impl Grant {
    /// The declared grant narrowed by the operator: an operator entry is kept only when a
    /// declared entry covers it.
    pub fn narrowed(&self, by: &GrantNarrowing) -> Grant {
        fn keep(declared: &[String], operator: &Option<Vec<String>>, pattern: bool) -> Vec<String> {
            match operator {
                None => declared.to_vec(),
                Some(wanted) => wanted
                    .iter()
                    .filter(|w| {
                        declared.iter().any(|d| {
                            if pattern {
                                pattern_covers(d, w)
                            } else {
                                w.starts_with(d.as_str())
                            }
                        })
                    })
                    .cloned()
                    .collect(),
            }
        }
        Grant {
            link_prefixes: keep(&self.link_prefixes, &by.link_prefixes, false),
            ovs_bridges: keep(&self.ovs_bridges, &by.ovs_bridges, true),
            namespace_prefixes: keep(&self.namespace_prefixes, &by.namespace_prefixes, false),
            physical_interfaces: keep(&self.physical_interfaces, &by.physical_interfaces, true),
        }
    }

    fn link_prefix_ok(&self, name: &str) -> bool {
        self.link_prefixes
            .iter()
            .any(|p| !p.is_empty() && name.starts_with(p.as_str()))
    }

    fn physical_ok(&self, name: &str) -> bool {
        let matches = |n: &str| {
            self.physical_interfaces
                .iter()
                .any(|p| pattern_matches(p, n))
        };
        // A VLAN sub-interface belongs to its physical interface: `<phys>.<vid>`, or the
        // shortened name the naming rule gives when that passes 15 bytes.
        let Some((parent, vid)) = name.rsplit_once('.') else {
            return matches(name);
        };
        let Ok(vid) = vid.parse::<u16>() else {
            return matches(name);
        };
        matches(name)
            || matches(parent)
            || self
                .physical_interfaces
                .iter()
                .filter(|p| !p.ends_with('*'))
                .any(|p| names::vlan_subinterface(p, vid) == name)
    }

    fn ovs_bridge_ok(&self, name: &str) -> bool {
        self.ovs_bridges.iter().any(|p| pattern_matches(p, name))
    }

    fn namespace_ok(&self, name: &str) -> bool {
        self.namespace_prefixes
            .iter()
            .any(|p| !p.is_empty() && name.starts_with(p.as_str()))
    }
}

/// `pattern` is an exact name, a prefix ending in `*`, or `*`.
fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Declared pattern `d` allows everything operator pattern `w` allows.
fn pattern_covers(d: &str, w: &str) -> bool {
    match d.strip_suffix('*') {
        Some(prefix) => w.starts_with(prefix),
        None => d == w,
    }
}

/// Where the call's device must end up: its namespace, and its name there.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub attachment_namespace: Option<&'a str>,
    pub attachment_interface: Option<&'a str>,
}

impl Scope<'_> {
    pub const NONE: Scope<'static> = Scope {
        attachment_namespace: None,
        attachment_interface: None,
    };
}

/// Every violation of the grant in `plan`; empty when the whole plan may run.
pub fn check_plan(grant: &Grant, scope: Scope, plan: &[Op]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, op) in plan.iter().enumerate() {
        let mut deny = |what: String| out.push(format!("op {i}: {what}"));
        let link = |name: &str, ns: Option<&str>, deny: &mut dyn FnMut(String)| {
            check_link(grant, scope, name, ns, deny)
        };
        match op {
            Op::EnsureNamespace(ns) | Op::RemoveNamespace(ns) => {
                if !grant.namespace_ok(ns) {
                    deny(format!("namespace {ns} is not granted"));
                }
            }
            Op::EnsureBridge(b) => link(&b.name, None, &mut deny),
            Op::EnsureVeth(v) => {
                link(&v.name, None, &mut deny);
                link(&v.peer, v.peer_namespace.as_deref(), &mut deny);
            }
            Op::AttachToBridge(a) => {
                link(&a.link, None, &mut deny);
                link(&a.bridge, None, &mut deny);
            }
            Op::SetLink(l) => link(&l.name, l.namespace.as_deref(), &mut deny),
            Op::EnsureVxlan(v) => {
                link(&v.name, None, &mut deny);
                if let Some(dev) = &v.underlay_device {
                    link(dev, None, &mut deny);
                }
            }
            Op::EnsureVlan(v) => {
                link(&v.name, None, &mut deny);
                link(&v.parent, None, &mut deny);
            }
            Op::EnsureMacvlan(m) => {
                link(&m.name, m.namespace.as_deref(), &mut deny);
                link(&m.parent, None, &mut deny);
            }
            Op::EnsureAddress(a) => link(&a.link, a.namespace.as_deref(), &mut deny),
            Op::EnsureRoute(r) => {
                if let Some(dev) = &r.device {
                    link(dev, r.namespace.as_deref(), &mut deny);
                } else if let Some(ns) = &r.namespace {
                    check_namespace(grant, scope, ns, &mut deny);
                } else {
                    deny(format!(
                        "route to {} in the host namespace without a granted device",
                        r.destination
                    ));
                }
            }
            Op::EnsureOvsBridge(b) => {
                if !grant.ovs_bridge_ok(&b.name) {
                    deny(format!("OVS bridge {} is not granted", b.name));
                }
            }
            Op::EnsureOvsPort(p) => {
                if !grant.ovs_bridge_ok(&p.bridge) {
                    deny(format!("OVS bridge {} is not granted", p.bridge));
                }
                link(&p.name, None, &mut deny);
            }
            Op::RemoveOvsPort(p) => {
                if !grant.ovs_bridge_ok(&p.bridge) {
                    deny(format!("OVS bridge {} is not granted", p.bridge));
                }
                link(&p.name, None, &mut deny);
            }
            Op::RemoveLink(l) => link(&l.name, l.namespace.as_deref(), &mut deny),
        }
    }
    out
}

fn check_namespace(grant: &Grant, scope: Scope, ns: &str, deny: &mut dyn FnMut(String)) {
    if scope.attachment_namespace != Some(ns) && !grant.namespace_ok(ns) {
        deny(format!("namespace {ns} is not granted"));
    }
}

fn check_link(
    grant: &Grant,
    scope: Scope,
    name: &str,
    ns: Option<&str>,
    deny: &mut dyn FnMut(String),
) {
    match ns {
        None => {
            if !grant.link_prefix_ok(name) && !grant.physical_ok(name) {
                deny(format!("link {name} is not granted"));
            }
        }
        Some(ns) if scope.attachment_namespace == Some(ns) => {
            if scope.attachment_interface != Some(name) && !grant.link_prefix_ok(name) {
                deny(format!(
                    "link {name} in the attachment namespace {ns} is not granted"
                ));
            }
        }
        Some(ns) => {
            check_namespace(grant, scope, ns, deny);
            if !grant.link_prefix_ok(name) {
                deny(format!("link {name} in namespace {ns} is not granted"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neutrino_model::{AttachSpec, LinkRef};

    fn grant() -> Grant {
        Grant {
            link_prefixes: vec!["tap".into(), "qbr".into()],
            ovs_bridges: vec!["br-*".into()],
            namespace_prefixes: vec!["qdhcp-".into()],
            physical_interfaces: vec!["eth1".into()],
        }
    }

    #[test]
    fn operators_narrow_but_never_widen() {
        let n = GrantNarrowing {
            link_prefixes: Some(vec!["tap".into(), "veth".into()]),
            ovs_bridges: Some(vec!["br-int".into(), "ovs0".into()]),
            namespace_prefixes: None,
            physical_interfaces: Some(vec!["eth1".into(), "eth0".into()]),
        };
        let g = grant().narrowed(&n);
        assert_eq!(g.link_prefixes, vec!["tap"]);
        assert_eq!(g.ovs_bridges, vec!["br-int"]);
        assert_eq!(g.namespace_prefixes, vec!["qdhcp-"]);
        assert_eq!(g.physical_interfaces, vec!["eth1"]);
    }

    #[test]
    fn one_bad_op_is_reported_and_names_the_object() {
        let plan = vec![
            Op::AttachToBridge(AttachSpec {
                link: "tap1".into(),
                bridge: "qbr1".into(),
            }),
            Op::AttachToBridge(AttachSpec {
                link: "eth0".into(),
                bridge: "qbr1".into(),
            }),
            Op::RemoveNamespace("root-ns".into()),
            Op::RemoveLink(LinkRef {
                name: "eth0".into(),
                namespace: Some("inst-1".into()),
            }),
            Op::AttachToBridge(AttachSpec {
                link: "eth1.100".into(),
                bridge: "qbr1".into(),
            }),
        ];
        let scope = Scope {
            attachment_namespace: Some("inst-1"),
            attachment_interface: Some("eth0"),
        };
        let v = check_plan(&grant(), scope, &plan);
        assert_eq!(
            v,
            vec![
                "op 1: link eth0 is not granted",
                "op 2: namespace root-ns is not granted"
            ]
        );
    }

    #[test]
    fn shortened_vlan_names_belong_to_their_interface() {
        let g = Grant {
            physical_interfaces: vec!["enp129s0f1np1".into()],
            ..Grant::default()
        };
        let long = names::vlan_subinterface("enp129s0f1np1", 4094);
        assert_ne!(long, "enp129s0f1np1.4094");
        let plan = vec![Op::AttachToBridge(AttachSpec {
            link: long,
            bridge: "enp129s0f1np1".into(),
        })];
        assert!(check_plan(&g, Scope::NONE, &plan).is_empty());
        let other = names::vlan_subinterface("enp129s0f0np0", 4094);
        let plan = vec![Op::AttachToBridge(AttachSpec {
            link: other,
            bridge: "enp129s0f1np1".into(),
        })];
        assert_eq!(check_plan(&g, Scope::NONE, &plan).len(), 1);
    }
}

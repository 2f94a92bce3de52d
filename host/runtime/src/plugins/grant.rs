//! Grants: what a driver may touch, and the check of every plan operation against it.
//!
//! A driver declares its capabilities in `describe`; the operator may narrow them (never
//! widen). Every operation of a plan is checked before anything runs; one operation outside
//! the grant rejects the whole plan.

use neutrino_sdk::names;
use serde::{Deserialize, Serialize};

use neutrino_model::{self as model, Op};

use super::validate::MAX_NAMESPACE_NAME;

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

/// The grant entry for "the interfaces the call's agent maps" (see the SDK's
/// `names::MAPPED_INTERFACES`).
pub const MAPPED_INTERFACES: &str = names::MAPPED_INTERFACES;

/// How many characters of an id a device or namespace name must carry after its prefix to be
/// the device of that id (Neutron's names keep 11; a long prefix leaves fewer).
const MIN_ID_CHARS: usize = 8;

/// A wildcard physical-interface entry (`*`, `eth*`): the driver would reach interfaces it
/// cannot know exist, so it is granted only when the operator lists it.
fn is_wildcard(p: &str) -> bool {
    p.ends_with('*')
}

impl Grant {
    /// The declared grant narrowed by the operator: an operator entry is kept only when a
    /// declared entry covers it. A declared wildcard physical interface (`*`, `eth*`) is kept
    /// only when the operator lists it (or something it covers): the operator must say so.
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
        let physical = match &by.physical_interfaces {
            None => self
                .physical_interfaces
                .iter()
                .filter(|p| !is_wildcard(p))
                .cloned()
                .collect(),
            some => keep(&self.physical_interfaces, some, true),
        };
        Grant {
            link_prefixes: keep(&self.link_prefixes, &by.link_prefixes, false),
            ovs_bridges: keep(&self.ovs_bridges, &by.ovs_bridges, true),
            namespace_prefixes: keep(&self.namespace_prefixes, &by.namespace_prefixes, false),
            physical_interfaces: physical,
        }
    }

    /// The declared wildcard physical interfaces the operator did not grant (for the log).
    pub fn wildcards_not_granted(&self, effective: &Grant) -> Vec<String> {
        self.physical_interfaces
            .iter()
            .filter(|p| is_wildcard(p) && !effective.physical_interfaces.contains(p))
            .cloned()
            .collect()
    }

    fn link_prefix_ok(&self, name: &str) -> bool {
        self.link_prefixes
            .iter()
            .any(|p| !p.is_empty() && name.starts_with(p.as_str()))
    }

    /// The physical interfaces of this call: the granted patterns, and the interfaces and
    /// bridges the call's agent maps when the grant has [`MAPPED_INTERFACES`].
    fn physical_patterns<'s>(&'s self, scope: &Scope<'s>) -> impl Iterator<Item = &'s str> {
        let mapped = self
            .physical_interfaces
            .iter()
            .any(|p| p == MAPPED_INTERFACES);
        self.physical_interfaces
            .iter()
            .map(String::as_str)
            .filter(|p| *p != MAPPED_INTERFACES)
            .chain(
                scope
                    .mapped_interfaces
                    .iter()
                    .chain(scope.mapped_bridges)
                    .filter(move |_| mapped)
                    .map(|(_, iface)| iface.as_str()),
            )
    }

    /// `name` is one of the call's physical interfaces itself (not a VLAN of one).
    fn is_physical(&self, scope: &Scope, name: &str) -> bool {
        self.physical_patterns(scope)
            .any(|p| pattern_matches(p, name))
    }

    /// `name` is a VLAN sub-interface of one of the call's physical interfaces, with VLAN id
    /// `vid` when given: `<phys>.<vid>`, or the shortened name the naming rule gives when that
    /// passes 15 bytes.
    fn is_vlan_of_physical(&self, scope: &Scope, name: &str, vid: Option<u16>) -> bool {
        let Some((parent, v)) = name.rsplit_once('.') else {
            return false;
        };
        let Ok(v) = v.parse::<u16>() else {
            return false;
        };
        if vid.is_some_and(|want| want != v) {
            return false;
        }
        self.physical_patterns(scope).any(|p| {
            pattern_matches(p, parent)
                || (!is_wildcard(p) && names::vlan_subinterface(p, v) == name)
        })
    }

    fn physical_ok(&self, scope: &Scope, name: &str) -> bool {
        self.is_physical(scope, name) || self.is_vlan_of_physical(scope, name, None)
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

/// Declared pattern `d` allows everything operator pattern `w` allows. The mapped interfaces
/// cover an exact name the operator lists (the operator's word on the host's interfaces),
/// never a wildcard.
fn pattern_covers(d: &str, w: &str) -> bool {
    if d == MAPPED_INTERFACES {
        return w == MAPPED_INTERFACES || !is_wildcard(w);
    }
    match d.strip_suffix('*') {
        Some(prefix) => w.starts_with(prefix) && w != MAPPED_INTERFACES,
        None => d == w,
    }
}

/// Whose devices a call may remove: its port's, its network's, its segment's. A name is
/// theirs when it is a granted prefix followed by the start of the port or network id
/// (Neutron's naming rule: `tap` + 11 characters of the port id), or by the segmentation id
/// (`vxlan-1001`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Owner<'a> {
    pub port_id: Option<&'a str>,
    pub network_id: Option<&'a str>,
    pub segmentation_id: Option<u32>,
}

impl Owner<'_> {
    /// `name` is `prefix` + something of this owner's, `max` being the longest name.
    fn owns(&self, prefixes: &[String], name: &str, max: usize) -> bool {
        prefixes.iter().any(|p| {
            let Some(rest) = name.strip_prefix(p.as_str()).filter(|_| !p.is_empty()) else {
                return false;
            };
            let min = MIN_ID_CHARS.min(max.saturating_sub(p.len() + 1)).max(1);
            let of_id = |id: &str| rest.len() >= min && id.starts_with(rest);
            self.port_id.is_some_and(of_id)
                || self.network_id.is_some_and(of_id)
                || self
                    .segmentation_id
                    .is_some_and(|s| !rest.is_empty() && rest == s.to_string())
        })
    }

    fn vlan(&self) -> Option<u16> {
        self.segmentation_id.and_then(|s| u16::try_from(s).ok())
    }
}

/// What the call is about: where its device must end up, whose devices it may remove, and
/// the physical interfaces its agent maps.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    pub attachment_namespace: Option<&'a str>,
    pub attachment_interface: Option<&'a str>,
    pub owner: Owner<'a>,
    /// The call's agent's `interface_mappings` (physical network, interface).
    pub mapped_interfaces: &'a [(String, String)],
    /// The call's agent's `bridge_mappings` (physical network, bridge): made by the operator,
    /// so used as physical interfaces are, never removed.
    pub mapped_bridges: &'a [(String, String)],
}

impl Scope<'_> {
    pub const NONE: Scope<'static> = Scope {
        attachment_namespace: None,
        attachment_interface: None,
        owner: Owner {
            port_id: None,
            network_id: None,
            segmentation_id: None,
        },
        mapped_interfaces: &[],
        mapped_bridges: &[],
    };
}

/// How an op uses a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Made, changed or used as it is (a bridge port, a VLAN parent): any granted link.
    Plain,
    /// Given an address, a route or a MAC: not a physical interface.
    Readdress,
    /// Removed: only a device of the call's owner.
    Remove,
}

/// Every violation of the grant in `plan`; empty when the whole plan may run.
pub fn check_plan(grant: &Grant, scope: Scope, plan: &[Op]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, op) in plan.iter().enumerate() {
        let mut deny = |what: String| out.push(format!("op {i}: {what}"));
        let link = |name: &str, ns: Option<&str>, how: Use, deny: &mut dyn FnMut(String)| {
            check_link(grant, &scope, name, ns, how, deny)
        };
        match op {
            Op::EnsureNamespace(ns) => {
                if !grant.namespace_ok(ns) {
                    deny(format!("namespace {ns} is not granted"));
                }
            }
            Op::RemoveNamespace(ns) => {
                if !grant.namespace_ok(ns) {
                    deny(format!("namespace {ns} is not granted"));
                } else if scope.attachment_namespace == Some(ns.as_str())
                    || !scope
                        .owner
                        .owns(&grant.namespace_prefixes, ns, MAX_NAMESPACE_NAME)
                {
                    deny(format!(
                        "removes namespace {ns}, which is not this call's port's or network's"
                    ));
                }
            }
            Op::EnsureBridge(b) => link(&b.name, None, Use::Plain, &mut deny),
            Op::EnsureVeth(v) => {
                link(&v.name, None, Use::Plain, &mut deny);
                link(&v.peer, v.peer_namespace.as_deref(), Use::Plain, &mut deny);
            }
            Op::AttachToBridge(a) => {
                link(&a.link, None, Use::Plain, &mut deny);
                link(&a.bridge, None, Use::Plain, &mut deny);
            }
            Op::SetLink(l) => {
                let how = if l.mac.is_some() {
                    Use::Readdress
                } else {
                    Use::Plain
                };
                link(&l.name, l.namespace.as_deref(), how, &mut deny)
            }
            Op::EnsureVxlan(v) => {
                link(&v.name, None, Use::Plain, &mut deny);
                if let Some(dev) = &v.underlay_device {
                    link(dev, None, Use::Plain, &mut deny);
                }
            }
            Op::EnsureVlan(v) => {
                link(&v.name, None, Use::Plain, &mut deny);
                link(&v.parent, None, Use::Plain, &mut deny);
            }
            Op::EnsureMacvlan(m) => {
                link(&m.name, m.namespace.as_deref(), Use::Plain, &mut deny);
                link(&m.parent, None, Use::Plain, &mut deny);
            }
            Op::EnsureAddress(a) => {
                link(&a.link, a.namespace.as_deref(), Use::Readdress, &mut deny)
            }
            Op::EnsureRoute(r) => {
                if let Some(dev) = &r.device {
                    link(dev, r.namespace.as_deref(), Use::Readdress, &mut deny);
                } else if let Some(ns) = &r.namespace {
                    check_namespace(grant, &scope, ns, &mut deny);
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
                link(&p.name, None, Use::Plain, &mut deny);
            }
            Op::RemoveOvsPort(p) => {
                if !grant.ovs_bridge_ok(&p.bridge) {
                    deny(format!("OVS bridge {} is not granted", p.bridge));
                }
                link(&p.name, None, Use::Remove, &mut deny);
            }
            Op::RemoveLink(l) => link(&l.name, l.namespace.as_deref(), Use::Remove, &mut deny),
        }
    }
    out
}

fn check_namespace(grant: &Grant, scope: &Scope, ns: &str, deny: &mut dyn FnMut(String)) {
    if scope.attachment_namespace != Some(ns) && !grant.namespace_ok(ns) {
        deny(format!("namespace {ns} is not granted"));
    }
}

fn check_link(
    grant: &Grant,
    scope: &Scope,
    name: &str,
    ns: Option<&str>,
    how: Use,
    deny: &mut dyn FnMut(String),
) {
    let owned = || {
        scope
            .owner
            .owns(&grant.link_prefixes, name, names::IFNAMSIZ_MAX)
    };
    match ns {
        None => {
            let physical = grant.is_physical(scope, name);
            if !grant.link_prefix_ok(name) && !grant.physical_ok(scope, name) {
                deny(format!("link {name} is not granted"));
            } else if physical && how == Use::Remove {
                deny(format!(
                    "removes link {name}, a physical interface: those are used, never removed"
                ));
            } else if physical && how == Use::Readdress {
                deny(format!(
                    "re-addresses link {name}, a physical interface: those are used, never \
                     re-addressed"
                ));
            } else if how == Use::Remove
                && !owned()
                && !grant.is_vlan_of_physical(scope, name, scope.owner.vlan())
            {
                deny(format!(
                    "removes link {name}, which is not this call's port's or network's"
                ));
            }
        }
        Some(ns) if scope.attachment_namespace == Some(ns) => {
            let attachment = scope.attachment_interface == Some(name);
            if !attachment && !grant.link_prefix_ok(name) {
                deny(format!(
                    "link {name} in the attachment namespace {ns} is not granted"
                ));
            } else if how == Use::Remove && !attachment && !owned() {
                deny(format!(
                    "removes link {name} in {ns}, which is not this call's port's"
                ));
            }
        }
        Some(ns) => {
            check_namespace(grant, scope, ns, deny);
            if !grant.link_prefix_ok(name) {
                deny(format!("link {name} in namespace {ns} is not granted"));
            } else if how == Use::Remove && !owned() {
                deny(format!(
                    "removes link {name} in {ns}, which is not this call's port's or network's"
                ));
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
            ..Scope::NONE
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

    const PORT: &str = "3f1c2a9e-7b44-4f7e-9a51-0c8d2b6f1e11";
    const NET: &str = "9b7e2c1d-55aa-4c3e-8f10-2d4b6a8c0e12";

    fn remove(name: &str, namespace: Option<&str>) -> Op {
        Op::RemoveLink(LinkRef {
            name: name.into(),
            namespace: namespace.map(Into::into),
        })
    }

    fn port_scope<'a>(mapped: &'a [(String, String)]) -> Scope<'a> {
        Scope {
            attachment_namespace: Some("inst-c0ffee00-11"),
            attachment_interface: Some("eth0"),
            owner: Owner {
                port_id: Some(PORT),
                network_id: Some(NET),
                segmentation_id: Some(100),
            },
            mapped_interfaces: mapped,
            mapped_bridges: &[],
        }
    }

    fn linuxbridge_like() -> Grant {
        Grant {
            link_prefixes: vec!["tap".into(), "brq".into(), "vxlan-".into()],
            ovs_bridges: vec![],
            namespace_prefixes: vec!["qdhcp-".into()],
            physical_interfaces: vec![MAPPED_INTERFACES.into()],
        }
    }

    #[test]
    fn a_call_removes_only_its_own_devices() {
        let mapped = vec![("physnet1".to_string(), "eth1".to_string())];
        let scope = port_scope(&mapped);
        let g = linuxbridge_like();
        let own = vec![
            remove("tap3f1c2a9e-7b", None),
            remove("brq9b7e2c1d-55", None),
            remove("vxlan-100", None),
            remove("eth1.100", None),
            remove("eth0", Some("inst-c0ffee00-11")),
        ];
        assert_eq!(check_plan(&g, scope, &own), Vec::<String>::new());
        let others = vec![
            // another port's tap, another network's bridge, another VLAN, a bare prefix
            remove("tapdeadbeef-00", None),
            remove("brq00000000-00", None),
            remove("eth1.200", None),
            remove("tap", None),
            // the host's own devices
            remove("eth1", None),
            remove("lo", Some("inst-c0ffee00-11")),
            Op::RemoveNamespace("inst-c0ffee00-11".into()),
            Op::RemoveNamespace("qdhcp-ffffffff-ffff".into()),
        ];
        let v = check_plan(&g, scope, &others);
        assert_eq!(v.len(), others.len(), "{v:#?}");
        assert!(
            v[4].contains("physical interface: those are used, never removed"),
            "{v:?}"
        );
        assert!(
            v[0].contains("not this call's port's or network's"),
            "{v:?}"
        );
    }

    #[test]
    fn physical_interfaces_are_the_mapped_ones_and_never_readdressed() {
        let mapped = vec![("physnet1".to_string(), "eth1".to_string())];
        let scope = port_scope(&mapped);
        let g = linuxbridge_like();
        let attach = |link: &str| {
            Op::AttachToBridge(AttachSpec {
                link: link.into(),
                bridge: "brq9b7e2c1d-55".into(),
            })
        };
        assert!(check_plan(&g, scope, &[attach("eth1"), attach("eth1.100")]).is_empty());
        let v = check_plan(&g, scope, &[attach("eth0"), attach("eth2.100")]);
        assert_eq!(v.len(), 2, "{v:?}");
        // Without the agent's mapping, eth1 is not granted.
        assert_eq!(check_plan(&g, Scope::NONE, &[attach("eth1")]).len(), 1);
        let readdress = [
            Op::EnsureAddress(neutrino_model::AddressSpec {
                link: "eth1".into(),
                namespace: None,
                cidr: "192.0.2.1/24".into(),
            }),
            Op::SetLink(neutrino_model::LinkSpec {
                name: "eth1".into(),
                namespace: None,
                up: true,
                mtu: None,
                mac: Some("fa:16:3e:00:00:01".into()),
            }),
        ];
        let v = check_plan(&g, scope, &readdress);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v.iter().all(|v| v.contains("never re-addressed")), "{v:?}");
    }

    #[test]
    fn a_declared_wildcard_needs_the_operator() {
        let declared = Grant {
            physical_interfaces: vec!["*".into(), "eth1".into()],
            ..Grant::default()
        };
        let silent = declared.narrowed(&GrantNarrowing::default());
        assert_eq!(silent.physical_interfaces, vec!["eth1"]);
        assert_eq!(declared.wildcards_not_granted(&silent), vec!["*"]);
        let said = declared.narrowed(&GrantNarrowing {
            physical_interfaces: Some(vec!["*".into()]),
            ..GrantNarrowing::default()
        });
        assert_eq!(said.physical_interfaces, vec!["*"]);
        assert!(declared.wildcards_not_granted(&said).is_empty());
        // The mapped interfaces cover a name the operator lists, never a wildcard.
        let mapped = linuxbridge_like().narrowed(&GrantNarrowing {
            physical_interfaces: Some(vec!["eth1".into(), "*".into()]),
            ..GrantNarrowing::default()
        });
        assert_eq!(mapped.physical_interfaces, vec!["eth1"]);
    }

    #[test]
    fn every_namespace_field_is_granted_or_the_attachment() {
        let g = linuxbridge_like();
        let mapped = vec![];
        let scope = port_scope(&mapped);
        let plan = [
            Op::EnsureAddress(neutrino_model::AddressSpec {
                link: "tap3f1c2a9e-7b".into(),
                namespace: Some("other-ns".into()),
                cidr: "192.0.2.1/24".into(),
            }),
            Op::EnsureRoute(neutrino_model::RouteSpec {
                namespace: Some("other-ns".into()),
                destination: "default".into(),
                gateway: None,
                device: None,
            }),
            Op::SetLink(neutrino_model::LinkSpec {
                name: "tap3f1c2a9e-7b".into(),
                namespace: Some("qdhcp-x".into()),
                up: true,
                mtu: None,
                mac: None,
            }),
        ];
        let v = check_plan(&g, scope, &plan);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(
            v.iter()
                .all(|v| v.contains("namespace other-ns is not granted"))
        );
    }
}

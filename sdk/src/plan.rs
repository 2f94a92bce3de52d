//! Plans: ordered lists of idempotent kernel operations, written with [`PlanBuilder`].
//!
//! ```
//! use neutrino_sdk::plan::PlanBuilder;
//! let plan = PlanBuilder::new()
//!     .bridge("qbr3f1c2a9e-7b", Some(1500))
//!     .veth("qvb3f1c2a9e-7b", "qvo3f1c2a9e-7b", None, None, Some(1500))
//!     .attach("qvb3f1c2a9e-7b", "qbr3f1c2a9e-7b")
//!     .up("qbr3f1c2a9e-7b")
//!     .build();
//! assert_eq!(plan.len(), 4);
//! ```

use crate::types::{
    AddressSpec, AttachSpec, Attachment, BridgeSpec, LinkRef, LinkSpec, MacvlanMode, MacvlanSpec,
    Op, OvsBridgeSpec, OvsPortRef, OvsPortSpec, OvsPortType, Pairs, Plan, RouteSpec, VethSpec,
    VlanSpec, VxlanSpec,
};

/// Builds a [`Plan`] one operation at a time.
#[derive(Debug, Default, Clone)]
pub struct PlanBuilder {
    ops: Vec<Op>,
}

impl PlanBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Any operation, as is.
    pub fn op(mut self, op: Op) -> Self {
        self.ops.push(op);
        self
    }

    pub fn namespace(self, name: &str) -> Self {
        self.op(Op::EnsureNamespace(name.to_string()))
    }

    /// A Linux bridge (forward delay 0, STP off).
    pub fn bridge(self, name: &str, mtu: Option<u32>) -> Self {
        self.op(Op::EnsureBridge(BridgeSpec {
            name: name.to_string(),
            mtu,
        }))
    }

    /// A veth pair: `name` on the host, `peer` in `peer_namespace` (host if `None`).
    pub fn veth(
        self,
        name: &str,
        peer: &str,
        peer_namespace: Option<&str>,
        peer_mac: Option<&str>,
        mtu: Option<u32>,
    ) -> Self {
        self.op(Op::EnsureVeth(VethSpec {
            name: name.to_string(),
            peer: peer.to_string(),
            peer_namespace: peer_namespace.map(str::to_string),
            peer_mac: peer_mac.map(str::to_string),
            mtu,
        }))
    }

    pub fn attach(self, link: &str, bridge: &str) -> Self {
        self.op(Op::AttachToBridge(AttachSpec {
            link: link.to_string(),
            bridge: bridge.to_string(),
        }))
    }

    /// Set a host link up.
    pub fn up(self, name: &str) -> Self {
        self.link(name, None, true, None, None)
    }

    /// Set a link up inside a namespace.
    pub fn up_in(self, name: &str, namespace: &str) -> Self {
        self.link(name, Some(namespace), true, None, None)
    }

    /// Set a link's state, MTU and MAC.
    pub fn link(
        self,
        name: &str,
        namespace: Option<&str>,
        up: bool,
        mtu: Option<u32>,
        mac: Option<&str>,
    ) -> Self {
        self.op(Op::SetLink(LinkSpec {
            name: name.to_string(),
            namespace: namespace.map(str::to_string),
            up,
            mtu,
            mac: mac.map(str::to_string),
        }))
    }

    /// Plugs an attachment into a Linux bridge through a veth pair, as os-vif plugs a `bridge`
    /// VIF: the veth `tap` on the host with its peer as the attachment's interface in the
    /// attachment's namespace (with `mac`, and `mtu` on both ends), `tap` attached to `bridge`,
    /// then `tap` up and the peer up in the namespace.
    pub fn tap_into_bridge(
        self,
        tap: &str,
        bridge: &str,
        attachment: &Attachment,
        mac: &str,
        mtu: Option<u32>,
    ) -> Self {
        let ns = attachment.namespace.as_str();
        let peer = attachment.interface_name.as_str();
        self.veth(tap, peer, Some(ns), Some(mac), mtu)
            .attach(tap, bridge)
            .up(tap)
            .up_in(peer, ns)
    }

    pub fn vxlan(self, spec: VxlanSpec) -> Self {
        self.op(Op::EnsureVxlan(spec))
    }

    pub fn vlan(self, name: &str, parent: &str, vlan_id: u16, mtu: Option<u32>) -> Self {
        self.op(Op::EnsureVlan(VlanSpec {
            name: name.to_string(),
            parent: parent.to_string(),
            vlan_id,
            mtu,
        }))
    }

    pub fn macvlan(
        self,
        name: &str,
        parent: &str,
        mode: MacvlanMode,
        namespace: Option<&str>,
        mac: Option<&str>,
        mtu: Option<u32>,
    ) -> Self {
        self.op(Op::EnsureMacvlan(MacvlanSpec {
            name: name.to_string(),
            parent: parent.to_string(),
            mode,
            namespace: namespace.map(str::to_string),
            mac: mac.map(str::to_string),
            mtu,
        }))
    }

    pub fn address(self, link: &str, namespace: Option<&str>, cidr: &str) -> Self {
        self.op(Op::EnsureAddress(AddressSpec {
            link: link.to_string(),
            namespace: namespace.map(str::to_string),
            cidr: cidr.to_string(),
        }))
    }

    pub fn route(
        self,
        namespace: Option<&str>,
        destination: &str,
        gateway: Option<&str>,
        device: Option<&str>,
    ) -> Self {
        self.op(Op::EnsureRoute(RouteSpec {
            namespace: namespace.map(str::to_string),
            destination: destination.to_string(),
            gateway: gateway.map(str::to_string),
            device: device.map(str::to_string),
        }))
    }

    pub fn ovs_bridge(self, name: &str, datapath_type: &str) -> Self {
        self.op(Op::EnsureOvsBridge(OvsBridgeSpec {
            name: name.to_string(),
            datapath_type: datapath_type.to_string(),
        }))
    }

    pub fn ovs_port(
        self,
        bridge: &str,
        name: &str,
        port_type: OvsPortType,
        tag: Option<u16>,
        external_ids: Pairs,
    ) -> Self {
        self.op(Op::EnsureOvsPort(OvsPortSpec {
            bridge: bridge.to_string(),
            name: name.to_string(),
            port_type,
            tag,
            external_ids,
        }))
    }

    pub fn remove_ovs_port(self, bridge: &str, name: &str) -> Self {
        self.op(Op::RemoveOvsPort(OvsPortRef {
            bridge: bridge.to_string(),
            name: name.to_string(),
        }))
    }

    /// Remove a link (removing one end of a veth removes both).
    pub fn remove_link(self, name: &str, namespace: Option<&str>) -> Self {
        self.op(Op::RemoveLink(LinkRef {
            name: name.to_string(),
            namespace: namespace.map(str::to_string),
        }))
    }

    pub fn remove_namespace(self, name: &str) -> Self {
        self.op(Op::RemoveNamespace(name.to_string()))
    }

    pub fn build(self) -> Plan {
        self.ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn tap_into_bridge_is_the_veth_the_attach_and_both_ends_up() {
        let attachment = testing::instance_attachment();
        let ns = attachment.namespace.as_str();
        let (tap, mac) = ("tap3f1c2a9e-7b", "fa:16:3e:12:34:56");
        assert_eq!(
            PlanBuilder::new()
                .tap_into_bridge(tap, "br100", &attachment, mac, Some(1450))
                .build(),
            PlanBuilder::new()
                .veth(tap, "eth0", Some(ns), Some(mac), Some(1450))
                .attach(tap, "br100")
                .up(tap)
                .up_in("eth0", ns)
                .build()
        );
    }
}

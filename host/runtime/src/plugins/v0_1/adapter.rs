//! Conversions between the 0.1 generated types and the model, both ways.
//!
//! Every record, enum and variant of the 0.1 contract has `From` in both directions (and from
//! a reference to the model type, which is what a call lowers). The macros list each field and
//! case once; a field or case added to either side and not to the other fails to compile.

use neutrino_model as model;

use super::neutrino::driver::types as wit;

/// One value converted between the two sides; `From` is written in terms of it so that the
/// fields' `Option`s, `Vec`s and pairs convert too.
pub(crate) trait Adapt<T> {
    fn adapt(self) -> T;
}

macro_rules! same {
    ($($t:ty),*) => {$(
        impl Adapt<$t> for $t {
            fn adapt(self) -> $t {
                self
            }
        }
        impl Adapt<$t> for &$t {
            fn adapt(self) -> $t {
                self.clone()
            }
        }
    )*};
}

same!(String, bool, u8, u16, u32, (String, String));

impl<A: Adapt<B>, B> Adapt<Option<B>> for Option<A> {
    fn adapt(self) -> Option<B> {
        self.map(Adapt::adapt)
    }
}

impl<'a, A, B> Adapt<Option<B>> for &'a Option<A>
where
    &'a A: Adapt<B>,
{
    fn adapt(self) -> Option<B> {
        self.as_ref().map(Adapt::adapt)
    }
}

impl<A: Adapt<B>, B> Adapt<Vec<B>> for Vec<A> {
    fn adapt(self) -> Vec<B> {
        self.into_iter().map(Adapt::adapt).collect()
    }
}

impl<'a, A, B> Adapt<Vec<B>> for &'a Vec<A>
where
    &'a A: Adapt<B>,
{
    fn adapt(self) -> Vec<B> {
        self.iter().map(Adapt::adapt).collect()
    }
}

/// `From` both ways, and from a reference to the model type, in terms of `Adapt`.
macro_rules! froms {
    ($name:ident) => {
        impl From<wit::$name> for model::$name {
            fn from(v: wit::$name) -> Self {
                v.adapt()
            }
        }
        impl From<model::$name> for wit::$name {
            fn from(v: model::$name) -> Self {
                v.adapt()
            }
        }
        impl From<&model::$name> for wit::$name {
            fn from(v: &model::$name) -> Self {
                v.adapt()
            }
        }
    };
}

/// Records: the same fields on both sides.
macro_rules! records {
    ($($name:ident { $($field:ident),* $(,)? })*) => {$(
        impl Adapt<model::$name> for wit::$name {
            fn adapt(self) -> model::$name {
                model::$name { $($field: self.$field.adapt()),* }
            }
        }
        impl Adapt<wit::$name> for model::$name {
            fn adapt(self) -> wit::$name {
                wit::$name { $($field: self.$field.adapt()),* }
            }
        }
        impl Adapt<wit::$name> for &model::$name {
            fn adapt(self) -> wit::$name {
                wit::$name { $($field: (&self.$field).adapt()),* }
            }
        }
        froms!($name);
    )*};
}

/// Enums: the same cases on both sides.
macro_rules! enums {
    ($($name:ident { $($case:ident),* $(,)? })*) => {$(
        impl Adapt<model::$name> for wit::$name {
            fn adapt(self) -> model::$name {
                match self { $(wit::$name::$case => model::$name::$case),* }
            }
        }
        impl Adapt<wit::$name> for model::$name {
            fn adapt(self) -> wit::$name {
                match self { $(model::$name::$case => wit::$name::$case),* }
            }
        }
        impl Adapt<wit::$name> for &model::$name {
            fn adapt(self) -> wit::$name {
                (*self).adapt()
            }
        }
        froms!($name);
    )*};
}

/// Variants whose every case has a payload.
macro_rules! variants {
    ($($name:ident { $($case:ident),* $(,)? })*) => {$(
        impl Adapt<model::$name> for wit::$name {
            fn adapt(self) -> model::$name {
                match self { $(wit::$name::$case(v) => model::$name::$case(v.adapt())),* }
            }
        }
        impl Adapt<wit::$name> for model::$name {
            fn adapt(self) -> wit::$name {
                match self { $(model::$name::$case(v) => wit::$name::$case(v.adapt())),* }
            }
        }
        impl Adapt<wit::$name> for &model::$name {
            fn adapt(self) -> wit::$name {
                match self { $(model::$name::$case(v) => wit::$name::$case(v.adapt())),* }
            }
        }
        froms!($name);
    )*};
}

enums! {
    NetworkType { Flat, Vlan, Vxlan, Gre, Geneve, Local }
    VnicType {
        Normal, Direct, Macvtap, Baremetal, DirectPhysical, VirtioForwarder, SmartNic, Vdpa,
        AcceleratorDirect, AcceleratorDirectPhysical, RemoteManaged,
    }
    AttachmentKind { Instance, Dhcp, Router }
    MacvlanMode { Bridge, Vepa, Private, Passthru }
}

records! {
    Segment { id, network_type, physical_network, segmentation_id, mtu }
    Network { id, name, project_id, mtu, admin_state_up, shared, external, segments }
    FixedIp { subnet_id, ip_address }
    Port {
        id, network_id, name, mac_address, fixed_ips, vnic_type, binding_host, binding_profile,
        device_owner, device_id, admin_state_up,
    }
    AgentConfigurations {
        bridge_mappings, interface_mappings, tunnel_types, tunneling_ip, integration_bridge,
        datapath_type, ovs_hybrid_plug, extra,
    }
    Agent { id, agent_type, binary, host, alive, admin_state_up, configurations }
    BindingLevel { level, driver, segment_id }
    BindContext { port, network, host, level, segments_to_bind, upper_levels, agents }
    Bound { segment_id, vif_type, vif_details }
    ContinueWith { segment_id, next_segments }
    Grant { link_prefixes, ovs_bridges, namespace_prefixes, physical_interfaces }
    Description { name, version, agent_type, vnic_types, network_types, vif_types, capabilities }
    NetworkContext { host, network, segment, agent, local_vlan }
    Attachment { kind, namespace, interface_name }
    PortContext {
        host, port, network, segment, vif_type, vif_details, agent, local_vlan, attachment,
    }
    BridgeSpec { name, mtu }
    VethSpec { name, peer, peer_namespace, peer_mac, mtu }
    AttachSpec { link, bridge }
    LinkSpec { name, namespace, up, mtu, mac }
    VxlanSpec { name, vni, local_ip, group, underlay_device, dst_port, mtu }
    VlanSpec { name, parent, vlan_id, mtu }
    MacvlanSpec { name, parent, mode, namespace, mac, mtu }
    AddressSpec { link, namespace, cidr }
    RouteSpec { namespace, destination, gateway, device }
    OvsBridgeSpec { name, datapath_type }
    OvsPortSpec { bridge, name, port_type, tag, external_ids }
    LinkRef { name, namespace }
    OvsPortRef { bridge, name }
}

variants! {
    BindDecision { Bound, ContinueWith, Pass }
    DriverError { InvalidInput, Unsupported, Conflict, RetryLater, Internal }
    Op {
        EnsureNamespace, EnsureBridge, EnsureVeth, AttachToBridge, SetLink, EnsureVxlan,
        EnsureVlan, EnsureMacvlan, EnsureAddress, EnsureRoute, EnsureOvsBridge, EnsureOvsPort,
        RemoveOvsPort, RemoveLink, RemoveNamespace,
    }
}

// Cases with and without a payload.
impl Adapt<model::OvsPortType> for wit::OvsPortType {
    fn adapt(self) -> model::OvsPortType {
        match self {
            wit::OvsPortType::System => model::OvsPortType::System,
            wit::OvsPortType::Internal => model::OvsPortType::Internal,
            wit::OvsPortType::Patch(peer) => model::OvsPortType::Patch(peer),
        }
    }
}

impl Adapt<wit::OvsPortType> for model::OvsPortType {
    fn adapt(self) -> wit::OvsPortType {
        match self {
            model::OvsPortType::System => wit::OvsPortType::System,
            model::OvsPortType::Internal => wit::OvsPortType::Internal,
            model::OvsPortType::Patch(peer) => wit::OvsPortType::Patch(peer),
        }
    }
}

impl Adapt<wit::OvsPortType> for &model::OvsPortType {
    fn adapt(self) -> wit::OvsPortType {
        self.clone().adapt()
    }
}

froms!(OvsPortType);

#[cfg(test)]
mod tests {
    //! The model must serialise exactly as the 0.1 generated types did (stored binding results,
    //! attachments, the agent wire protocol), and survive a trip through them unchanged.

    use super::*;

    fn segment(id: &str, network_type: model::NetworkType) -> model::Segment {
        model::Segment {
            id: id.into(),
            network_type,
            physical_network: Some("physnet1".into()),
            segmentation_id: Some(42),
            mtu: 1450,
        }
    }

    fn network() -> model::Network {
        model::Network {
            id: "net".into(),
            name: "demo".into(),
            project_id: "p".into(),
            mtu: 1500,
            admin_state_up: true,
            shared: false,
            external: true,
            segments: vec![
                segment("s1", model::NetworkType::Vlan),
                model::Segment {
                    physical_network: None,
                    segmentation_id: None,
                    ..segment("s2", model::NetworkType::Geneve)
                },
            ],
        }
    }

    fn port(vnic_type: model::VnicType) -> model::Port {
        model::Port {
            id: "port".into(),
            network_id: "net".into(),
            name: "".into(),
            mac_address: "fa:16:3e:00:00:01".into(),
            fixed_ips: vec![model::FixedIp {
                subnet_id: "sub".into(),
                ip_address: "10.0.0.3".into(),
            }],
            vnic_type,
            binding_host: "h1".into(),
            binding_profile: vec![("capabilities".into(), r#"["switchdev"]"#.into())],
            device_owner: "compute:nova".into(),
            device_id: "vm".into(),
            admin_state_up: false,
        }
    }

    fn agent() -> model::Agent {
        model::Agent {
            id: "a".into(),
            agent_type: "Open vSwitch agent".into(),
            binary: "neutrino-agent".into(),
            host: "h1".into(),
            alive: true,
            admin_state_up: true,
            configurations: model::AgentConfigurations {
                bridge_mappings: vec![("physnet1".into(), "br-ex".into())],
                interface_mappings: vec![],
                tunnel_types: vec!["vxlan".into()],
                tunneling_ip: Some("192.0.2.1".into()),
                integration_bridge: None,
                datapath_type: Some("netdev".into()),
                ovs_hybrid_plug: Some(false),
                extra: vec![("devices".into(), "3".into())],
            },
        }
    }

    fn every_op() -> model::Plan {
        use model::*;
        vec![
            Op::EnsureNamespace("ns".into()),
            Op::EnsureBridge(BridgeSpec {
                name: "br".into(),
                mtu: Some(1500),
            }),
            Op::EnsureVeth(VethSpec {
                name: "a".into(),
                peer: "b".into(),
                peer_namespace: Some("ns".into()),
                peer_mac: Some("fa:16:3e:00:00:01".into()),
                mtu: None,
            }),
            Op::AttachToBridge(AttachSpec {
                link: "a".into(),
                bridge: "br".into(),
            }),
            Op::SetLink(LinkSpec {
                name: "a".into(),
                namespace: None,
                up: true,
                mtu: Some(9000),
                mac: None,
            }),
            Op::EnsureVxlan(VxlanSpec {
                name: "vx".into(),
                vni: 7,
                local_ip: Some("192.0.2.1".into()),
                group: None,
                underlay_device: Some("eth1".into()),
                dst_port: 4789,
                mtu: None,
            }),
            Op::EnsureVlan(VlanSpec {
                name: "eth1.5".into(),
                parent: "eth1".into(),
                vlan_id: 5,
                mtu: None,
            }),
            Op::EnsureMacvlan(MacvlanSpec {
                name: "mv".into(),
                parent: "eth1".into(),
                mode: MacvlanMode::Passthru,
                namespace: Some("ns".into()),
                mac: None,
                mtu: None,
            }),
            Op::EnsureAddress(AddressSpec {
                link: "a".into(),
                namespace: Some("ns".into()),
                cidr: "10.0.0.2/24".into(),
            }),
            Op::EnsureRoute(RouteSpec {
                namespace: Some("ns".into()),
                destination: "default".into(),
                gateway: Some("10.0.0.1".into()),
                device: None,
            }),
            Op::EnsureOvsBridge(OvsBridgeSpec {
                name: "br-int".into(),
                datapath_type: "netdev".into(),
            }),
            Op::EnsureOvsPort(OvsPortSpec {
                bridge: "br-int".into(),
                name: "qvo".into(),
                port_type: OvsPortType::System,
                tag: Some(1),
                external_ids: vec![("iface-id".into(), "port".into())],
            }),
            Op::EnsureOvsPort(OvsPortSpec {
                bridge: "br-int".into(),
                name: "int-br".into(),
                port_type: OvsPortType::Patch("phy-br".into()),
                tag: None,
                external_ids: vec![],
            }),
            Op::EnsureOvsPort(OvsPortSpec {
                bridge: "br-int".into(),
                name: "i".into(),
                port_type: OvsPortType::Internal,
                tag: None,
                external_ids: vec![],
            }),
            Op::RemoveOvsPort(OvsPortRef {
                bridge: "br-int".into(),
                name: "qvo".into(),
            }),
            Op::RemoveLink(LinkRef {
                name: "a".into(),
                namespace: None,
            }),
            Op::RemoveNamespace("ns".into()),
        ]
    }

    /// `value` converted to its 0.1 generated type (by reference and by value) serialises to
    /// the same JSON, and comes back from it equal.
    fn same<M, W>(value: M)
    where
        M: serde::Serialize + PartialEq + std::fmt::Debug + Clone + Into<W>,
        W: serde::Serialize + Into<M>,
        for<'a> &'a M: Into<W>,
    {
        let json = serde_json::to_value(&value).unwrap();
        let by_ref: W = (&value).into();
        assert_eq!(serde_json::to_value(&by_ref).unwrap(), json);
        let by_value: W = value.clone().into();
        assert_eq!(serde_json::to_value(&by_value).unwrap(), json);
        let back: M = by_ref.into();
        assert_eq!(back, value);
    }

    #[test]
    fn the_model_serialises_as_the_0_1_types_did() {
        use model::*;
        let bind = BindContext {
            port: port(VnicType::DirectPhysical),
            network: network(),
            host: "h1".into(),
            level: 1,
            segments_to_bind: network().segments,
            upper_levels: vec![BindingLevel {
                level: 0,
                driver: "top".into(),
                segment_id: "s0".into(),
            }],
            agents: vec![agent()],
        };
        same::<_, wit::BindContext>(bind);
        same::<_, wit::NetworkContext>(NetworkContext {
            host: "h1".into(),
            network: network(),
            segment: segment("s1", NetworkType::Flat),
            agent: agent(),
            local_vlan: Some(3),
        });
        for kind in [
            AttachmentKind::Instance,
            AttachmentKind::Dhcp,
            AttachmentKind::Router,
        ] {
            same::<_, wit::PortContext>(PortContext {
                host: "h1".into(),
                port: port(VnicType::Normal),
                network: network(),
                segment: segment("s1", NetworkType::Vxlan),
                vif_type: "ovs".into(),
                vif_details: vec![("port_filter".into(), "true".into())],
                agent: agent(),
                local_vlan: None,
                attachment: Attachment {
                    kind,
                    namespace: "qdhcp-net".into(),
                    interface_name: "ns-1".into(),
                },
            });
        }
        same::<_, wit::BindDecision>(BindDecision::Bound(Bound {
            segment_id: "s1".into(),
            vif_type: "bridge".into(),
            vif_details: vec![("connectivity".into(), "\"l2\"".into())],
        }));
        same::<_, wit::BindDecision>(BindDecision::ContinueWith(ContinueWith {
            segment_id: "s1".into(),
            next_segments: vec![segment("s3", NetworkType::Gre)],
        }));
        same::<_, wit::BindDecision>(BindDecision::Pass("no agent".into()));
        for e in [
            DriverError::InvalidInput("i".into()),
            DriverError::Unsupported("u".into()),
            DriverError::Conflict("c".into()),
            DriverError::RetryLater("r".into()),
            DriverError::Internal("x".into()),
        ] {
            same::<_, wit::DriverError>(e);
        }
        same::<_, wit::Description>(Description {
            name: "d".into(),
            version: "1.0.0".into(),
            agent_type: "Linux bridge agent".into(),
            vnic_types: vec![VnicType::Normal, VnicType::RemoteManaged, VnicType::Vdpa],
            network_types: vec![NetworkType::Local, NetworkType::Vlan],
            vif_types: vec!["bridge".into()],
            capabilities: Grant {
                link_prefixes: vec!["tap".into()],
                ovs_bridges: vec!["br-*".into()],
                namespace_prefixes: vec!["qdhcp-".into()],
                physical_interfaces: vec!["*".into()],
            },
        });
        for op in every_op() {
            same::<_, wit::Op>(op);
        }
    }
}

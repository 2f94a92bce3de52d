//! Networks, segments and ports as drivers see them.

use serde::{Deserialize, Serialize};

use crate::Pairs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NetworkType {
    Flat,
    Vlan,
    Vxlan,
    Gre,
    Geneve,
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VnicType {
    Normal,
    Direct,
    Macvtap,
    Baremetal,
    DirectPhysical,
    VirtioForwarder,
    SmartNic,
    Vdpa,
    AcceleratorDirect,
    AcceleratorDirectPhysical,
    RemoteManaged,
}

/// One segment of a network (provider attributes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub id: String,
    pub network_type: NetworkType,
    pub physical_network: Option<String>,
    pub segmentation_id: Option<u32>,
    pub mtu: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub mtu: u32,
    pub admin_state_up: bool,
    pub shared: bool,
    pub external: bool,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedIp {
    pub subnet_id: String,
    pub ip_address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub id: String,
    pub network_id: String,
    pub name: String,
    pub mac_address: String,
    pub fixed_ips: Vec<FixedIp>,
    pub vnic_type: VnicType,
    pub binding_host: String,
    /// `binding:profile`: top-level keys, JSON-encoded values.
    pub binding_profile: Pairs,
    pub device_owner: String,
    pub device_id: String,
    pub admin_state_up: bool,
}

/// `normal`, `direct-physical`, ... as Neutron spells vnic types.
pub fn vnic_type_name(v: VnicType) -> &'static str {
    match v {
        VnicType::Normal => "normal",
        VnicType::Direct => "direct",
        VnicType::Macvtap => "macvtap",
        VnicType::Baremetal => "baremetal",
        VnicType::DirectPhysical => "direct-physical",
        VnicType::VirtioForwarder => "virtio-forwarder",
        VnicType::SmartNic => "smart-nic",
        VnicType::Vdpa => "vdpa",
        VnicType::AcceleratorDirect => "accelerator-direct",
        VnicType::AcceleratorDirectPhysical => "accelerator-direct-physical",
        VnicType::RemoteManaged => "remote-managed",
    }
}

/// `flat`, `vlan`, ... as Neutron spells network types.
pub fn network_type_name(t: NetworkType) -> &'static str {
    match t {
        NetworkType::Flat => "flat",
        NetworkType::Vlan => "vlan",
        NetworkType::Vxlan => "vxlan",
        NetworkType::Gre => "gre",
        NetworkType::Geneve => "geneve",
        NetworkType::Local => "local",
    }
}

/// Every vnic type, in the contract's order.
pub const VNIC_TYPES: [VnicType; 11] = [
    VnicType::Normal,
    VnicType::Direct,
    VnicType::Macvtap,
    VnicType::Baremetal,
    VnicType::DirectPhysical,
    VnicType::VirtioForwarder,
    VnicType::SmartNic,
    VnicType::Vdpa,
    VnicType::AcceleratorDirect,
    VnicType::AcceleratorDirectPhysical,
    VnicType::RemoteManaged,
];

/// Every network type, in the contract's order.
pub const NETWORK_TYPES: [NetworkType; 6] = [
    NetworkType::Flat,
    NetworkType::Vlan,
    NetworkType::Vxlan,
    NetworkType::Gre,
    NetworkType::Geneve,
    NetworkType::Local,
];

/// The vnic type Neutron spells `name`.
pub fn vnic_type_named(name: &str) -> Option<VnicType> {
    VNIC_TYPES.into_iter().find(|v| vnic_type_name(*v) == name)
}

/// The network type Neutron spells `name`.
pub fn network_type_named(name: &str) -> Option<NetworkType> {
    NETWORK_TYPES
        .into_iter()
        .find(|t| network_type_name(*t) == name)
}

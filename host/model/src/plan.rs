//! Plans: lists of idempotent kernel operations, as drivers return them and the agent's
//! executor applies them.

use serde::{Deserialize, Serialize};

use crate::Pairs;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeSpec {
    pub name: String,
    pub mtu: Option<u32>,
}

/// A veth pair: `name` in the host namespace, `peer` in `peer_namespace` (host if none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VethSpec {
    pub name: String,
    pub peer: String,
    pub peer_namespace: Option<String>,
    pub peer_mac: Option<String>,
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachSpec {
    pub link: String,
    pub bridge: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSpec {
    pub name: String,
    pub namespace: Option<String>,
    pub up: bool,
    pub mtu: Option<u32>,
    pub mac: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VxlanSpec {
    pub name: String,
    pub vni: u32,
    pub local_ip: Option<String>,
    pub group: Option<String>,
    pub underlay_device: Option<String>,
    pub dst_port: u16,
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VlanSpec {
    pub name: String,
    pub parent: String,
    pub vlan_id: u16,
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MacvlanMode {
    Bridge,
    Vepa,
    Private,
    Passthru,
}

/// A macvlan on `parent`, ending up as `name` in `namespace` (host if none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacvlanSpec {
    pub name: String,
    pub parent: String,
    pub mode: MacvlanMode,
    pub namespace: Option<String>,
    pub mac: Option<String>,
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressSpec {
    pub link: String,
    pub namespace: Option<String>,
    /// address/prefix, e.g. `10.0.0.2/24`
    pub cidr: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSpec {
    pub namespace: Option<String>,
    pub destination: String,
    pub gateway: Option<String>,
    pub device: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OvsBridgeSpec {
    pub name: String,
    pub datapath_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OvsPortType {
    System,
    Internal,
    /// a patch port whose peer is the named port
    Patch(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OvsPortSpec {
    pub bridge: String,
    pub name: String,
    pub port_type: OvsPortType,
    pub tag: Option<u16>,
    pub external_ids: Pairs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRef {
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OvsPortRef {
    pub bridge: String,
    pub name: String,
}

/// One idempotent kernel operation. `Ensure*` creates or corrects; `Remove*` succeeds when the
/// object is already gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    EnsureNamespace(String),
    EnsureBridge(BridgeSpec),
    EnsureVeth(VethSpec),
    AttachToBridge(AttachSpec),
    SetLink(LinkSpec),
    EnsureVxlan(VxlanSpec),
    EnsureVlan(VlanSpec),
    EnsureMacvlan(MacvlanSpec),
    EnsureAddress(AddressSpec),
    EnsureRoute(RouteSpec),
    EnsureOvsBridge(OvsBridgeSpec),
    EnsureOvsPort(OvsPortSpec),
    RemoveOvsPort(OvsPortRef),
    RemoveLink(LinkRef),
    RemoveNamespace(String),
}

pub type Plan = Vec<Op>;

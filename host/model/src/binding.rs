//! Port binding (contexts, decisions, errors), what a driver declares about itself, and the
//! contexts of the dataplane calls.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Agent, Network, NetworkType, Pairs, Port, Segment, VnicType};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingLevel {
    pub level: u8,
    pub driver: String,
    pub segment_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindContext {
    pub port: Port,
    pub network: Network,
    pub host: String,
    /// 0 for the top level; deeper levels follow a `ContinueWith`.
    pub level: u8,
    /// The segments offered at this level.
    pub segments_to_bind: Vec<Segment>,
    /// Levels bound above this one.
    pub upper_levels: Vec<BindingLevel>,
    /// Every agent registered on `host`, of any type, dead ones included.
    pub agents: Vec<Agent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bound {
    pub segment_id: String,
    pub vif_type: String,
    /// JSON-encoded values.
    pub vif_details: Pairs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinueWith {
    pub segment_id: String,
    pub next_segments: Vec<Segment>,
}

/// A driver binds, asks the next level to go on, or passes with the reason why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BindDecision {
    Bound(Bound),
    ContinueWith(ContinueWith),
    Pass(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DriverError {
    InvalidInput(String),
    Unsupported(String),
    Conflict(String),
    RetryLater(String),
    Internal(String),
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::InvalidInput(m) => write!(f, "invalid input: {m}"),
            DriverError::Unsupported(m) => write!(f, "unsupported: {m}"),
            DriverError::Conflict(m) => write!(f, "conflict: {m}"),
            DriverError::RetryLater(m) => write!(f, "retry later: {m}"),
            DriverError::Internal(m) => write!(f, "internal: {m}"),
        }
    }
}

impl std::error::Error for DriverError {}

/// What a driver may touch. Link prefixes apply to link names; OVS bridges and physical
/// interfaces are exact names or prefixes written with a trailing `*`; namespace prefixes
/// apply to namespace names. The namespace of the call's attachment is always granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub link_prefixes: Vec<String>,
    pub ovs_bridges: Vec<String>,
    pub namespace_prefixes: Vec<String>,
    pub physical_interfaces: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    pub name: String,
    /// The driver's own version (semver).
    pub version: String,
    /// The agent type that must be alive on the binding host.
    pub agent_type: String,
    pub vnic_types: Vec<VnicType>,
    pub network_types: Vec<NetworkType>,
    pub vif_types: Vec<String>,
    pub capabilities: Grant,
}

/// Input of `setup_network` / `teardown_network`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkContext {
    pub host: String,
    pub network: Network,
    /// The segment bound on this host.
    pub segment: Segment,
    /// This driver's agent on the host.
    pub agent: Agent,
    /// Host-local VLAN for the network on the integration bridge, where the host uses one.
    pub local_vlan: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AttachmentKind {
    Instance,
    Dhcp,
    Router,
}

/// Where a port's device must end up: its namespace and its interface name there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub kind: AttachmentKind,
    pub namespace: String,
    pub interface_name: String,
}

/// Input of `plug_port` / `unplug_port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortContext {
    pub host: String,
    pub port: Port,
    pub network: Network,
    /// The bottom bound segment.
    pub segment: Segment,
    pub vif_type: String,
    pub vif_details: Pairs,
    pub agent: Agent,
    pub local_vlan: Option<u16>,
    pub attachment: Attachment,
}

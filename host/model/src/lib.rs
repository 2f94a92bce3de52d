//! # neutrino-model
//!
//! The host's own data model of everything that crosses the host/driver boundary: networks and
//! their segments, ports, agents, binding contexts and decisions, driver errors, descriptions
//! and grants, attachments, and plans of kernel operations.
//!
//! These types are what the store persists, what the agent wire protocol carries, what the
//! executor applies and what the runtime's API takes and returns. They are not generated from
//! the contract: each contract version (`wit/since_v*/driver.wit`) has an adapter in the host's
//! `plugins` module converting its generated types to and from these, so a new contract version
//! changes neither the database nor the wire format.
//!
//! The serde representation is a stored and wire format: field names in `snake_case`, enum
//! cases in `PascalCase`, variants externally tagged (`{"Bound": {...}}`, `"Flat"`). It must not
//! change; `tests::wire_format_is_stable` pins it.
//!
//! Only serde and serde_json: no wasmtime, no SQL, no HTTP.

mod agent;
mod binding;
mod liveness;
mod network;
mod plan;

pub use agent::{Agent, AgentConfigurations};
pub use binding::{
    Attachment, AttachmentKind, BindContext, BindDecision, BindingLevel, Bound, ContinueWith,
    Description, DriverError, Grant, NetworkContext, PortContext,
};
pub use liveness::{DEFAULT_AGENT_DOWN_TIME, agent_alive};
pub use network::{
    FixedIp, NETWORK_TYPES, Network, NetworkType, Port, Segment, VNIC_TYPES, VnicType,
    network_type_name, network_type_named, vnic_type_name, vnic_type_named,
};
pub use plan::{
    AddressSpec, AttachSpec, BridgeSpec, LinkRef, LinkSpec, MacvlanMode, MacvlanSpec, Op,
    OvsBridgeSpec, OvsPortRef, OvsPortSpec, OvsPortType, Plan, RouteSpec, VethSpec, VlanSpec,
    VxlanSpec,
};

/// Key/value pairs. In `binding_profile`, `vif_details` and `AgentConfigurations::extra` the
/// values are JSON texts (`"true"`, `"\"br-int\""`, `"1500"`).
pub type Pairs = Vec<(String, String)>;

/// The network namespace of an instance: `inst-` and the first 11 characters of its id, the
/// same truncation Neutron uses for device names.
pub fn instance_namespace(instance_id: &str) -> String {
    format!("inst-{}", &instance_id[..instance_id.len().min(11)])
}

/// A JSON dict as [`Pairs`]: its top-level keys, their values JSON-encoded.
pub fn json_pairs(map: &serde_json::Map<String, serde_json::Value>) -> Pairs {
    map.iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests;

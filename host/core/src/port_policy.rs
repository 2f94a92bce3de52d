//! Neutron's policy for ports on a network the caller does not own (a shared network): a
//! plain port, on a subnet it may name, and nothing that would let it pose as the network's
//! own devices or take addresses others rely on. On such a network a non-admin may not choose
//! the MAC or an IP address (the gateway's, say), may not use a `network:*` device owner (the
//! DHCP feed treats router-interface ports as the subnet's router), and may not turn port
//! security off or add allowed address pairs (which would let it spoof the others). Each
//! attribute is checked only when the request carries it, as in Neutron's policy engine.

use serde_json::{Map, Value};

use crate::RequestContext;
use crate::error::NeutronError;
use neutrino_store::networks::Network;

/// A port create or update, for the policy's rule names.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    Create,
    Update,
}

impl Action {
    fn rule(self) -> &'static str {
        match self {
            Action::Create => "create_port",
            Action::Update => "update_port",
        }
    }
}

/// 403 `PolicyNotAuthorized` when a caller who does not own `network` (and is not an admin)
/// asks for an attribute only the network's owner may set.
pub fn check(
    ctx: &RequestContext,
    network: &Network,
    b: &Map<String, Value>,
    action: Action,
) -> Result<(), NeutronError> {
    if ctx.owns(&network.project_id) {
        return Ok(());
    }
    let denied =
        |attribute: &str| NeutronError::forbidden(&format!("{}:{attribute}", action.rule()));
    if b.get("device_owner")
        .and_then(Value::as_str)
        .is_some_and(|o| o.starts_with("network:"))
    {
        return Err(denied("device_owner"));
    }
    for attribute in [
        "mac_address",
        "port_security_enabled",
        "allowed_address_pairs",
    ] {
        if b.contains_key(attribute) {
            return Err(denied(attribute));
        }
    }
    let picks_address = b
        .get("fixed_ips")
        .and_then(Value::as_array)
        .is_some_and(|ips| ips.iter().any(|ip| ip.get("ip_address").is_some()));
    if picks_address {
        return Err(denied("fixed_ips:ip_address"));
    }
    Ok(())
}

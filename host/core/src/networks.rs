//! Network lifecycle: create (provider attributes, segment, MTU), visibility, update, and
//! delete with its cascade (DHCP unscheduled, DHCP ports and subnets with it).

use serde_json::{Map, Value};

use crate::error::{CoreResult, NeutronError, Status};
use crate::{RequestContext, Services, body, dhcp_scheduling, ports, subnets};
use neutrino_store::{self as store, networks as repo, networks::Network, networks::SegmentError};

/// VXLAN adds 50 bytes of headers (outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14).
const VXLAN_OVERHEAD: i64 = 50;
/// The least MTU of an IP version's links (RFC 791, RFC 8200).
const IPV4_MIN_MTU: i64 = 68;
const IPV6_MIN_MTU: i64 = 1280;

/// A network's MTU may be anything not negative and not above its segment's; what it must
/// reach is the concern of its subnets, as in Neutron: an IPv4 subnet needs 68, an IPv6 one
/// 1280. Refused where the subnet is created, or where the MTU of a network with subnets is
/// lowered.
pub fn check_mtu_fits(mtu: i64, ip_version: u8) -> CoreResult<()> {
    let least = if ip_version == 6 {
        IPV6_MIN_MTU
    } else {
        IPV4_MIN_MTU
    };
    if mtu < least {
        return Err(NeutronError::invalid_input(format!(
            "IPv{ip_version} subnets need a network MTU of at least {least}; the network's is {mtu}"
        )));
    }
    Ok(())
}

pub fn not_found(id: &str) -> NeutronError {
    NeutronError::not_found(
        "NetworkNotFound",
        format!("Network {id} could not be found."),
    )
}

/// Creates a network from a create body (the caller checked its attributes and policy and
/// chose the project) in `tx`: its segment claimed, its MTU checked.
pub async fn create_one(
    state: &Services,
    project_id: String,
    b: &Map<String, Value>,
    tx: &mut store::Tx<'_>,
) -> CoreResult<Network> {
    let id = store::new_id();
    let single = one_segment(b)?;
    let b = single.as_ref().unwrap_or(b);
    let (network_type, physical_network, segmentation_id) = segment(state, b, tx, &id).await?;
    let max_mtu = state.config.global_physnet_mtu
        - if network_type == "vxlan" {
            VXLAN_OVERHEAD
        } else {
            0
        };
    let mtu = match body::integer(b, "mtu")? {
        None => max_mtu,
        Some(m) if m < 0 => {
            return Err(NeutronError::bad_request(format!(
                "Invalid input for mtu. Reason: '{m}' should be non-negative."
            )));
        }
        Some(m) if m > max_mtu => {
            return Err(NeutronError::invalid_input(format!(
                "Requested MTU is too big, maximum is {max_mtu}"
            )));
        }
        Some(m) => m,
    };
    let external = body::boolean(b, "router:external")?.unwrap_or(false);
    let is_default = body::boolean(b, "is_default")?.unwrap_or(false);
    if is_default && !external {
        return Err(NeutronError::invalid_input(
            "is_default can only be set on an external network",
        ));
    }
    let hints = match b.get("availability_zone_hints") {
        None => "[]".to_string(),
        Some(v @ Value::Array(items)) if items.iter().all(Value::is_string) => v.to_string(),
        Some(other) => {
            return Err(NeutronError::invalid_input(format!(
                "'{other}' is not a list of availability zones"
            )));
        }
    };
    let now = store::now();
    let n = Network {
        id,
        project_id,
        name: body::string(b, "name", 255)?.unwrap_or_default(),
        description: body::string(b, "description", 255)?.unwrap_or_default(),
        admin_state_up: body::boolean(b, "admin_state_up")?.unwrap_or(true),
        status: "ACTIVE".into(),
        shared: body::boolean(b, "shared")?.unwrap_or(false),
        external,
        is_default,
        port_security_enabled: body::boolean(b, "port_security_enabled")?.unwrap_or(true),
        mtu,
        network_type,
        physical_network,
        segmentation_id,
        availability_zone_hints: hints,
        created_at: now.clone(),
        updated_at: now,
        revision_number: 1,
    };
    repo::insert(tx, &n).await?;
    Ok(n)
}

/// A body whose `segments` (the multi-provider extension, as Terraform's provider sends it)
/// names one segment, as the same body with that segment's provider attributes; None when it
/// has no `segments` (or an empty list). As Neutron's type drivers do, a zero or empty value
/// counts as not given (`"provider:segmentation_id": 0` for VXLAN: one is allocated). A
/// network of several segments is refused: one segment per network is what is served.
fn one_segment(b: &Map<String, Value>) -> CoreResult<Option<Map<String, Value>>> {
    const PROVIDER: [&str; 3] = [
        "provider:network_type",
        "provider:physical_network",
        "provider:segmentation_id",
    ];
    let segments = match b.get("segments") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(s)) if s.is_empty() => return Ok(None),
        Some(Value::Array(s)) => s,
        Some(other) => {
            return Err(NeutronError::bad_request(format!(
                "Invalid input for segments. Reason: '{other}' is not a list."
            )));
        }
    };
    if PROVIDER
        .iter()
        .any(|k| b.get(*k).is_some_and(|v| !v.is_null()))
    {
        return Err(NeutronError::new(
            Status::BAD_REQUEST,
            "SegmentsSetInConjunctionWithProviders",
            "Segments and provider values cannot both be set.",
        ));
    }
    let [Value::Object(segment)] = segments.as_slice() else {
        return Err(NeutronError::invalid_input(
            "networks of several segments are not supported; give one segment",
        ));
    };
    if let Some(k) = segment.keys().find(|k| !PROVIDER.contains(&k.as_str())) {
        return Err(NeutronError::invalid_input(format!(
            "Unrecognized attribute(s) '{k}'"
        )));
    }
    let mut single = b.clone();
    single.remove("segments");
    for (k, v) in segment {
        let unset = v.is_null() || v == &Value::from(0) || v.as_str() == Some("");
        if !unset {
            single.insert(k.clone(), v.clone());
        }
    }
    Ok(Some(single))
}

/// Validates the provider attributes and claims the segment, or a tenant VXLAN segment.
async fn segment(
    state: &Services,
    b: &Map<String, Value>,
    tx: &mut store::Tx<'_>,
    network_id: &str,
) -> CoreResult<(String, Option<String>, Option<i64>)> {
    let requested_type = match b.get("provider:network_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            return Err(NeutronError::invalid_input(format!(
                "network_type value '{other}' not supported"
            )));
        }
    };
    let physnet = body::string(b, "provider:physical_network", 64)?.filter(|p| !p.is_empty());
    let seg_id = body::integer(b, "provider:segmentation_id")?;
    let network_type = requested_type
        .unwrap_or(&state.config.tenant_network_type)
        .to_string();
    let (range, needs_physnet) = match network_type.as_str() {
        "flat" => ((0, 0), true),
        "vlan" => ((1, 4094), true),
        "vxlan" => (state.config.vni_range, false),
        "local" => ((0, 0), false),
        other => {
            return Err(NeutronError::invalid_input(format!(
                "network_type value '{other}' not supported"
            )));
        }
    };
    match (needs_physnet, &physnet) {
        (true, None) => {
            return Err(NeutronError::invalid_input(format!(
                "physical_network required for {network_type} provider network"
            )));
        }
        (false, Some(_)) => {
            return Err(NeutronError::invalid_input(format!(
                "physical_network not allowed for {network_type} provider network"
            )));
        }
        _ => {}
    }
    if matches!(network_type.as_str(), "flat" | "local") {
        if seg_id.is_some() {
            return Err(NeutronError::invalid_input(format!(
                "segmentation_id not allowed for {network_type} provider network"
            )));
        }
        if network_type == "local" {
            return Ok((network_type, None, None));
        }
    }
    let limits = match network_type.as_str() {
        "vlan" => (1, 4094),
        "vxlan" => (1, (1 << 24) - 1),
        _ => (0, 0),
    };
    if seg_id.is_some_and(|id| id < limits.0 || id > limits.1) {
        return Err(NeutronError::invalid_input(format!(
            "segmentation_id out of range ({} through {}).",
            limits.0, limits.1
        )));
    }
    let requested = if network_type == "flat" {
        Some(0)
    } else {
        seg_id
    };
    match repo::allocate_segment(
        tx,
        state.store.backend,
        &network_type,
        physnet.as_deref(),
        requested,
        range,
        network_id,
    )
    .await
    {
        Ok(id) => Ok((
            network_type.clone(),
            physnet,
            (network_type != "flat").then_some(id),
        )),
        Err(SegmentError::InUse) => Err(match network_type.as_str() {
            "flat" => NeutronError::conflict(
                "FlatNetworkInUse",
                format!(
                    "Unable to create the flat network. Physical network {} is in use.",
                    physnet.unwrap_or_default()
                ),
            ),
            "vlan" => NeutronError::conflict(
                "VlanIdInUse",
                format!(
                    "Unable to create the network. The VLAN {} on physical network {} is in use.",
                    seg_id.unwrap_or_default(),
                    physnet.unwrap_or_default()
                ),
            ),
            _ => NeutronError::conflict(
                "TunnelIdInUse",
                format!(
                    "Unable to create the network. The tunnel ID {} is in use.",
                    seg_id.unwrap_or_default()
                ),
            ),
        }),
        Err(SegmentError::Exhausted) => Err(NeutronError::new(
            Status::SERVICE_UNAVAILABLE,
            "NoNetworkAvailable",
            "Unable to create the network. No tenant network is available for allocation.",
        )),
        Err(SegmentError::Db(e)) => Err(e.into()),
    }
}

/// Callers see their own networks, shared ones and external ones.
pub fn visible_to(ctx: &RequestContext, n: &Network) -> bool {
    ctx.owns(&n.project_id) || n.shared || n.external
}

/// A network the caller may see, or 404.
pub async fn visible_in(
    conn: &mut store::Conn,
    ctx: &RequestContext,
    id: &str,
) -> CoreResult<Network> {
    match repo::get(conn, id).await? {
        Some(n) if visible_to(ctx, &n) => Ok(n),
        _ => Err(not_found(id)),
    }
}

/// Updates a network from an update body (checked for known and read-only attributes) that
/// the caller owns and may write; every bound port's host hears of it after commit. Answers
/// the network and its subnets' ids.
pub async fn update(
    state: &Services,
    ctx: &RequestContext,
    id: &str,
    b: &Map<String, Value>,
) -> CoreResult<(Network, Vec<String>)> {
    let mut tx = state.store.begin_write().await?;
    let mut n = match repo::get(&mut *tx, id).await? {
        Some(n) if visible_to(ctx, &n) => n,
        _ => return Err(not_found(id)),
    };
    if !ctx.owns(&n.project_id) {
        return Err(NeutronError::forbidden("update_network"));
    }
    ctx.require_write("update_network")?;
    for admin_only in ["shared", "router:external", "is_default"] {
        if b.contains_key(admin_only) && !ctx.is_admin() {
            return Err(NeutronError::forbidden(&format!(
                "update_network:{admin_only}"
            )));
        }
    }
    if let Some(name) = body::string(b, "name", 255)? {
        n.name = name;
    }
    if let Some(d) = body::string(b, "description", 255)? {
        n.description = d;
    }
    n.admin_state_up = body::boolean(b, "admin_state_up")?.unwrap_or(n.admin_state_up);
    n.shared = body::boolean(b, "shared")?.unwrap_or(n.shared);
    n.external = body::boolean(b, "router:external")?.unwrap_or(n.external);
    n.is_default = body::boolean(b, "is_default")?.unwrap_or(n.is_default);
    if n.is_default && !n.external {
        return Err(NeutronError::invalid_input(
            "is_default can only be set on an external network",
        ));
    }
    n.port_security_enabled =
        body::boolean(b, "port_security_enabled")?.unwrap_or(n.port_security_enabled);
    if let Some(mtu) = body::integer(b, "mtu")? {
        let max = state.config.global_physnet_mtu
            - if n.network_type == "vxlan" {
                VXLAN_OVERHEAD
            } else {
                0
            };
        if mtu < 0 {
            return Err(NeutronError::bad_request(format!(
                "Invalid input for mtu. Reason: '{mtu}' should be non-negative."
            )));
        }
        if mtu > max {
            return Err(NeutronError::invalid_input(format!(
                "Requested MTU is too big, maximum is {max}"
            )));
        }
        for s in store::subnets::on_network(&mut *tx, id).await? {
            check_mtu_fits(mtu, s.ip_version as u8)?;
        }
        n.mtu = mtu;
    }
    n.updated_at = store::now();
    n.revision_number += 1;
    repo::update(&mut tx, &n).await?;
    let subnets = subnet_ids(&mut tx, id).await?;
    // Every bound port carries its network to its host's agent (MTU, admin state).
    let mut newest = store::dhcp_hosting::record_network(&mut tx, id).await?;
    for (port, host) in store::ports::hosts_on_network(&mut tx, id).await? {
        newest = newest.max(store::dhcp_hosting::record_port(&mut tx, id, &port, &[&host]).await?);
    }
    store::commit(tx).await?;
    state.feed.committed(newest);
    Ok((n, subnets))
}

/// Deletes a network the caller owns and may write, with its DHCP port (unscheduled) and
/// subnets; refused while other ports use it.
pub async fn delete(state: &Services, ctx: &RequestContext, id: &str) -> CoreResult<()> {
    // Port creates racing the delete may deadlock with it or add a port after its check:
    // run again, it answers NetworkInUse (or deletes), as Neutron does.
    crate::retry::retrying("network delete", || delete_once(state, ctx, id)).await
}

async fn delete_once(state: &Services, ctx: &RequestContext, id: &str) -> CoreResult<()> {
    let mut tx = state.store.begin_write().await?;
    match repo::get(&mut *tx, id).await? {
        Some(n) if ctx.owns(&n.project_id) => ctx.require_write("delete_network")?,
        Some(n) if n.shared || n.external => return Err(NeutronError::forbidden("delete_network")),
        _ => return Err(not_found(id)),
    }
    // Ports other than DHCP ports keep the network; DHCP ports go with it.
    let ports = store::ports::on_network(&mut tx, id).await?;
    let in_use: Vec<&str> = ports
        .iter()
        .filter(|(_, owner)| owner != subnets::AUTO_DELETE_OWNER)
        .map(|(port, _)| port.as_str())
        .collect();
    if !in_use.is_empty() {
        return Err(NeutronError::conflict(
            "NetworkInUse",
            format!(
                "Unable to complete operation on network {id}. There are one or more ports still in use on the network, id for these ports is: {}.",
                in_use.join(",")
            ),
        ));
    }
    let mut newest = dhcp_scheduling::network_deleted(state, &mut tx, id).await?;
    for (port, _) in &ports {
        if let Some(p) = store::ports::get(&mut tx, port).await? {
            newest = newest.max(ports::remove(state, &mut tx, &p).await?);
        }
    }
    for subnet in store::subnets::on_network(&mut *tx, id).await? {
        store::subnets::delete(&mut tx, &subnet.id).await?;
        // A subnet from a pool gives its prefix back.
        if let Some(pool) = &subnet.subnetpool_id {
            crate::subnet_pools::release(state, &mut tx, pool, &subnets::cidr_of(&subnet)).await?;
        }
    }
    repo::delete(&mut tx, id).await?;
    store::commit(tx).await?;
    state.feed.committed(newest);
    Ok(())
}

pub async fn subnet_ids(conn: &mut store::Conn, network_id: &str) -> store::Result<Vec<String>> {
    Ok(store::subnets::on_network(conn, network_id)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect())
}

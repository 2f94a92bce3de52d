//! Routers as Neutron's L3 API keeps them (`router`, `ext-gw-mode`, `extraroute`,
//! `extraroute-atomic`): create, update (gateway, routes), delete, interfaces added and
//! removed by subnet or port. A router's interfaces and gateway are ordinary ports made by the
//! server (device_id = the router's id); the gateway's belongs to no project (`''`), as
//! Neutron's, so the project does not see it among its ports.
//!
//! Every change of a router takes its lock (`router/<id>`) first, so two interface adds on
//! overlapping subnets are checked one after the other, runs in one transaction, records a
//! feed entry for the router's host and schedules the router to an L3 agent when it first
//! needs one ([`l3_scheduling`]); its ports are bound after the commit.
//!
//! The public functions take and answer the API's JSON, so that auto-allocation can use them
//! without HTTP: [`create`], [`update`], [`delete`], [`add_interface`], [`remove_interface`].

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value, json};

use crate::error::{CoreResult, NeutronError};
use crate::quotas::{self, Ledger};
use crate::{RequestContext, Services, body, l3_scheduling, networks, ports, subnets};
use neutrino_store::floating_ips as fip_repo;
use neutrino_store::ports::{FixedIp, Port};
use neutrino_store::routers::{self as repo, GATEWAY_OWNER, INTERFACE_OWNER, Router};
use neutrino_store::subnets::Subnet;
use neutrino_store::{self as store, Tx};

/// Neutron's `enable_snat_by_default`.
const ENABLE_SNAT_BY_DEFAULT: bool = true;

pub fn not_found(id: &str) -> NeutronError {
    NeutronError::not_found("RouterNotFound", format!("Router {id} could not be found"))
}

/// Neutron's `BadRequest(resource='router', msg=...)`.
fn bad_router(why: impl std::fmt::Display) -> NeutronError {
    NeutronError::bad("BadRequest", format!("Bad router request: {why}."))
}

/// A router the caller may see (its project's; all for admins), or 404.
pub async fn visible(conn: &mut store::Conn, ctx: &RequestContext, id: &str) -> CoreResult<Router> {
    match repo::get(&mut *conn, id).await? {
        Some(r) if ctx.owns(&r.project_id) => Ok(r),
        _ => Err(not_found(id)),
    }
}

/// The context the server makes a router's ports with (as Neutron's L3 plugin, elevated).
fn server_ctx(project: &str) -> RequestContext {
    RequestContext {
        project_id: project.to_string(),
        user_id: project.to_string(),
        roles: vec!["admin".into()],
    }
}

fn as_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("a JSON object literal"),
    }
}

/// The resource of an API body (`{"router": {...}}`).
fn inner<'a>(b: &'a Map<String, Value>, resource: &str) -> CoreResult<&'a Map<String, Value>> {
    match b.get(resource) {
        Some(Value::Object(m)) => Ok(m),
        _ => Err(NeutronError::bad_request(format!(
            "Resource body required: {resource}"
        ))),
    }
}

/// A UUID, as neutron-lib's validator words a bad one.
pub fn uuid(v: &Value) -> Result<String, String> {
    match v.as_str() {
        Some(s) if is_uuid(s) => Ok(s.to_string()),
        Some(s) => Err(format!("'{s}' is not a valid UUID")),
        None => Err(format!("'{v}' is not a valid UUID")),
    }
}

/// The canonical form: 8-4-4-4-12 hex digits.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

// ---------------------------------------------------------------------------------------------
// The API dict.

/// The router's API dict; `distributed` and `ha` are shown to admins only (their policy).
pub async fn render(
    conn: &mut store::Conn,
    ctx: &RequestContext,
    r: &Router,
) -> CoreResult<Map<String, Value>> {
    let gw_ips = match &r.gw_port_id {
        Some(id) => store::ports::fixed_ips(&mut *conn, id).await?,
        None => Vec::new(),
    };
    let tags = store::tags::of(conn, store::tags::Kind::Router, &r.id).await?;
    let mut m = to_json(r, &gw_ips, ctx.is_admin());
    m.insert("tags".into(), json!(tags));
    Ok(m)
}

/// The router's API dict from its row and its gateway port's addresses (tags empty).
pub fn to_json(r: &Router, gw_ips: &[FixedIp], admin: bool) -> Map<String, Value> {
    let gateway = match &r.gw_network_id {
        Some(net) => json!({
            "network_id": net,
            "external_fixed_ips": gw_ips
                .iter()
                .map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address}))
                .collect::<Vec<_>>(),
            "enable_snat": r.enable_snat,
        }),
        None => Value::Null,
    };
    let routes: Value = serde_json::from_str(&r.routes).unwrap_or_else(|_| json!([]));
    let mut m = Map::new();
    m.insert("id".into(), json!(r.id));
    m.insert("name".into(), json!(r.name));
    m.insert("project_id".into(), json!(r.project_id));
    m.insert("admin_state_up".into(), json!(r.admin_state_up));
    m.insert("status".into(), json!(r.status));
    m.insert("external_gateway_info".into(), gateway);
    m.insert("description".into(), json!(r.description));
    m.insert("availability_zones".into(), json!([]));
    if admin {
        m.insert("distributed".into(), json!(false));
        m.insert("ha".into(), json!(false));
    }
    m.insert("availability_zone_hints".into(), json!([]));
    m.insert("routes".into(), routes);
    m.insert("flavor_id".into(), Value::Null);
    m.insert("tags".into(), json!([]));
    m.insert("created_at".into(), json!(r.created_at));
    m.insert("updated_at".into(), json!(r.updated_at));
    m.insert("revision_number".into(), json!(r.revision_number));
    m.insert("tenant_id".into(), json!(r.project_id));
    m
}

async fn answer(state: &Services, ctx: &RequestContext, id: &str) -> CoreResult<Value> {
    let mut conn = state.store.read_conn().await?;
    let r = visible(&mut conn, ctx, id).await?;
    Ok(json!({"router": render(&mut conn, ctx, &r).await?}))
}

// ---------------------------------------------------------------------------------------------
// Attributes.

/// `distributed` and `ha`: admin-only, and only `false` is served (legacy routers).
fn check_legacy(ctx: &RequestContext, b: &Map<String, Value>, action: &str) -> CoreResult<()> {
    for key in ["distributed", "ha"] {
        if !b.contains_key(key) {
            continue;
        }
        if !ctx.is_admin() {
            return Err(NeutronError::forbidden(&format!("{action}_router:{key}")));
        }
        if body::boolean(b, key)? == Some(true) {
            return Err(bad_router(format!(
                "only legacy routers are served: {key} must be false"
            )));
        }
    }
    Ok(())
}

/// `availability_zone_hints` (none exist, so only an empty list) and `flavor_id` (none).
fn check_extensions(b: &Map<String, Value>) -> CoreResult<()> {
    if let Some(hints) = body::list(b.get("availability_zone_hints"), "availability_zone_hints")?
        && let Some(az) = hints.first()
    {
        return Err(NeutronError::not_found(
            "AvailabilityZoneNotFound",
            format!(
                "AvailabilityZone {} could not be found.",
                az.as_str().map_or_else(|| az.to_string(), str::to_string)
            ),
        ));
    }
    match b.get("flavor_id") {
        None | Some(Value::Null) => Ok(()),
        Some(v) => Err(NeutronError::not_found(
            "FlavorNotFound",
            format!(
                "Flavor {} could not be found.",
                v.as_str().map_or_else(|| v.to_string(), str::to_string)
            ),
        )),
    }
}

/// A gateway as asked for: None clears it.
struct Gateway {
    network_id: String,
    fixed_ips: Option<Vec<Value>>,
    enable_snat: bool,
}

/// `external_gateway_info` (`dict_or_nodata`): `null` or `{}` clears; `enable_snat` and
/// `external_fixed_ips` are admin-only (their policy, even when equal to the default).
fn gateway_of(ctx: &RequestContext, v: &Value, action: &str) -> CoreResult<Option<Gateway>> {
    let bad = |why: String| {
        NeutronError::bad_request(format!(
            "Invalid input for external_gateway_info. Reason: {why}"
        ))
    };
    let m = match v {
        Value::Null => return Ok(None),
        Value::Object(m) if m.is_empty() => return Ok(None),
        Value::Object(m) => m,
        other => return Err(bad(format!("'{other}' is not a dictionary."))),
    };
    if let Some(k) = m
        .keys()
        .find(|k| !["network_id", "enable_snat", "external_fixed_ips"].contains(&k.as_str()))
    {
        return Err(bad(format!("Unrecognized key '{k}' in dictionary.")));
    }
    for key in ["enable_snat", "external_fixed_ips"] {
        if m.contains_key(key) && !ctx.is_admin() {
            return Err(NeutronError::forbidden(&format!(
                "{action}_router:external_gateway_info:{key}"
            )));
        }
    }
    let network_id = match m.get("network_id") {
        Some(v) => uuid(v).map_err(bad)?,
        None => return Err(bad("Validation of dictionary's keys failed. Expected keys: {'network_id'} Provided keys: {}".into())),
    };
    let fixed_ips =
        body::list(m.get("external_fixed_ips"), "external_fixed_ips")?.map(<[Value]>::to_vec);
    Ok(Some(Gateway {
        network_id,
        fixed_ips,
        enable_snat: body::boolean(m, "enable_snat")?.unwrap_or(ENABLE_SNAT_BY_DEFAULT),
    }))
}

// ---------------------------------------------------------------------------------------------
// Create, update, delete.

/// `POST /v2.0/routers` with `{"router": {...}}` (attributes checked by the caller, or known
/// good): answers `{"router": {...}}`. The quota is checked first; a gateway is set up in the
/// same transaction, and the router scheduled then.
pub async fn create(
    state: &Services,
    ctx: &RequestContext,
    b: &Map<String, Value>,
) -> CoreResult<Value> {
    let b = inner(b, "router")?;
    ctx.require_write("create_router")?;
    let project = ctx.project_for_create(b)?;
    if b.contains_key("routes") {
        return Err(NeutronError::bad_request(
            "Attribute 'routes' not allowed in POST",
        ));
    }
    check_legacy(ctx, b, "create")?;
    check_extensions(b)?;
    let gateway = match b.get("external_gateway_info") {
        Some(v) => gateway_of(ctx, v, "create")?,
        None => None,
    };
    let now = store::now();
    let mut r = Router {
        id: store::new_id(),
        project_id: project.clone(),
        name: body::string(b, "name", 255)?.unwrap_or_default(),
        description: body::string(b, "description", 255)?.unwrap_or_default(),
        admin_state_up: body::boolean(b, "admin_state_up")?.unwrap_or(true),
        status: "ACTIVE".into(),
        enable_snat: ENABLE_SNAT_BY_DEFAULT,
        routes: "[]".into(),
        created_at: now.clone(),
        updated_at: now,
        revision_number: 1,
        ..Router::default()
    };
    let mut tx = state.store.begin_write().await?;
    Ledger::check(&mut tx, state.store.backend, "router", &[(project, 1)]).await?;
    repo::insert(&mut tx, &r).await?;
    repo::lock(&mut tx, state.store.backend, &r.id).await?;
    let mut revision = None;
    if let Some(g) = gateway {
        revision = set_gateway(state, &mut tx, &mut r, Some(g)).await?;
        repo::update(&mut tx, &r).await?;
        revision = revision.max(l3_scheduling::schedule_or_tell(state, &mut tx, &r.id).await?);
    }
    store::commit(tx).await?;
    state.feed.committed(revision);
    l3_scheduling::bind_committed(state, &r.id).await;
    answer(state, ctx, &r.id).await
}

/// `PUT /v2.0/routers/{id}` with `{"router": {...}}`: name, description, admin_state_up,
/// the gateway (`enable_snat` back to its default when omitted) and the routes (checked
/// against the ports after the gateway changed).
pub async fn update(
    state: &Services,
    ctx: &RequestContext,
    id: &str,
    b: &Map<String, Value>,
) -> CoreResult<Value> {
    let b = inner(b, "router")?;
    check_legacy(ctx, b, "update")?;
    check_extensions(b)?;
    let gateway = match b.get("external_gateway_info") {
        Some(v) => Some(gateway_of(ctx, v, "update")?),
        None => None,
    };
    let mut tx = state.store.begin_write().await?;
    visible(&mut tx, ctx, id).await?;
    ctx.require_write("update_router")?;
    repo::lock(&mut tx, state.store.backend, id).await?;
    let mut r = visible(&mut tx, ctx, id).await?;
    if let Some(n) = body::string(b, "name", 255)? {
        r.name = n;
    }
    if let Some(d) = body::string(b, "description", 255)? {
        r.description = d;
    }
    if let Some(up) = body::boolean(b, "admin_state_up")? {
        r.admin_state_up = up;
    }
    let mut revision = None;
    if let Some(g) = gateway {
        revision = set_gateway(state, &mut tx, &mut r, g).await?;
    }
    if b.contains_key("routes") {
        let routes = routes_of(b.get("routes"))?;
        r.routes = check_routes(&mut tx, &r, &routes).await?;
    } else if b.contains_key("external_gateway_info") {
        // The routes must still reach their nexthops through the new gateway.
        let routes = routes_of(Some(&serde_json::from_str(&r.routes).unwrap_or(json!([]))))?;
        check_routes(&mut tx, &r, &routes).await?;
    }
    r.updated_at = store::now();
    r.revision_number += 1;
    repo::update(&mut tx, &r).await?;
    revision = revision.max(l3_scheduling::schedule_or_tell(state, &mut tx, id).await?);
    store::commit(tx).await?;
    state.feed.committed(revision);
    l3_scheduling::bind_committed(state, id).await;
    answer(state, ctx, id).await
}

/// `DELETE /v2.0/routers/{id}`: `RouterInUse` while interfaces remain (checked before
/// anything is undone); then the gateway port goes (not while floating IPs need it), the host
/// is told and the router goes.
pub async fn delete(state: &Services, ctx: &RequestContext, id: &str) -> CoreResult<()> {
    let mut tx = state.store.begin_write().await?;
    visible(&mut tx, ctx, id).await?;
    ctx.require_write("delete_router")?;
    repo::lock(&mut tx, state.store.backend, id).await?;
    let mut r = visible(&mut tx, ctx, id).await?;
    let interfaces = repo::port_ids(&mut *tx, id, INTERFACE_OWNER).await?;
    if !interfaces.is_empty() {
        return Err(NeutronError::conflict(
            "RouterInUse",
            format!(
                "Router {id} has ports still attached: {}",
                interfaces.join(", ")
            ),
        ));
    }
    let mut revision = set_gateway(state, &mut tx, &mut r, None).await?;
    revision = revision.max(l3_scheduling::unschedule(&mut tx, id).await?);
    repo::delete(&mut tx, id).await?;
    store::commit(tx).await?;
    state.feed.committed(revision);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The gateway.

fn gateway_in_use(router_id: &str, net_id: &str) -> NeutronError {
    NeutronError::conflict(
        "RouterExternalGatewayInUseByFloatingIp",
        format!(
            "Gateway cannot be updated for router {router_id}, since a gateway to external network {net_id} is required by one or more floating IPs."
        ),
    )
}

/// Sets (or with None clears) the router's gateway, in `r` (the caller writes the row): the
/// old gateway port goes unless the network stays and the addresses asked for are the same,
/// a new one is made on the external network.
async fn set_gateway(
    state: &Services,
    tx: &mut Tx<'_>,
    r: &mut Router,
    g: Option<Gateway>,
) -> CoreResult<Option<i64>> {
    let mut revision = None;
    if let Some(g) = &g {
        let network = store::networks::get(&mut **tx, &g.network_id)
            .await?
            .ok_or_else(|| networks::not_found(&g.network_id))?;
        if !network.external {
            return Err(bad_router(format!(
                "Network {} is not an external network",
                g.network_id
            )));
        }
        if r.gw_network_id.as_deref() == Some(&g.network_id) && g.fixed_ips.is_none() {
            r.enable_snat = g.enable_snat;
            return Ok(None);
        }
    }
    // The network changes, or its addresses do: floating IPs served through it hold it.
    if let Some(old_net) = r.gw_network_id.clone() {
        let same_network = g.as_ref().is_some_and(|g| g.network_id == old_net);
        if !same_network && !fip_repo::of_router(&mut **tx, &r.id).await?.is_empty() {
            return Err(gateway_in_use(&r.id, &old_net));
        }
        if let Some(port_id) = r.gw_port_id.take()
            && let Some(port) = store::ports::get(tx, &port_id).await?
        {
            revision = ports::remove(state, tx, &port).await?;
        }
        r.gw_network_id = None;
        r.enable_snat = ENABLE_SNAT_BY_DEFAULT;
    }
    let Some(g) = g else {
        return Ok(revision);
    };
    let subnets = store::subnets::on_network(&mut **tx, &g.network_id).await?;
    if let Some(items) = &g.fixed_ips {
        for item in items {
            if let Some(ip) = item.get("ip_address").and_then(Value::as_str)
                && subnets.iter().any(|s| s.gateway_ip.as_deref() == Some(ip))
            {
                return Err(bad_router(format!(
                    "External IP {ip} is the same as the gateway IP"
                )));
            }
        }
    }
    let mut port_body = json!({
        "network_id": g.network_id,
        "device_owner": GATEWAY_OWNER,
        "device_id": r.id,
        "name": "",
    });
    if let Some(items) = &g.fixed_ips {
        port_body["fixed_ips"] = Value::Array(items.clone());
    }
    let (port, port_revision) = make_port(state, tx, &r.id, "", as_map(port_body)).await?;
    // The gateway's subnets may not overlap the router's interfaces.
    let interface_subnets = subnets_of_ports(tx, &r.id, INTERFACE_OWNER).await?;
    for s in subnets
        .iter()
        .filter(|s| port.fixed_ips.iter().any(|f| f.subnet_id == s.id))
    {
        check_overlap(s, &interface_subnets)?;
    }
    r.gw_network_id = Some(g.network_id);
    r.gw_port_id = Some(port.id);
    r.enable_snat = g.enable_snat;
    Ok(revision.max(port_revision))
}

/// Makes a router's port from a port create body, for `project`, with the router's host as its
/// binding host when it has one (bound after the commit).
async fn make_port(
    state: &Services,
    tx: &mut Tx<'_>,
    router_id: &str,
    project: &str,
    mut b: Map<String, Value>,
) -> CoreResult<(Port, Option<i64>)> {
    let ctx = server_ctx(project);
    if let Some(host) = repo::host_of(&mut **tx, router_id).await? {
        b.insert("binding:host_id".into(), json!(host));
    }
    let mut draft = ports::draft_in(tx, &ctx, &b, project.to_string()).await?;
    draft.bind_after_commit();
    ports::write_one_draft(state, &ctx, &b, draft, tx).await
}

// ---------------------------------------------------------------------------------------------
// Interfaces.

/// The subnets the router's ports of `owner` have addresses on.
async fn subnets_of_ports(
    tx: &mut Tx<'_>,
    router_id: &str,
    owner: &str,
) -> CoreResult<Vec<Subnet>> {
    let mut out: Vec<Subnet> = Vec::new();
    for id in repo::port_ids(&mut **tx, router_id, owner).await? {
        for f in store::ports::fixed_ips(&mut **tx, &id).await? {
            if out.iter().any(|s| s.id == f.subnet_id) {
                continue;
            }
            if let Some(s) = store::subnets::get(&mut **tx, &f.subnet_id).await? {
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// Neutron's `_check_for_dup_router_subnets`: one port per subnet, no overlapping CIDRs.
fn check_overlap(new: &Subnet, existing: &[Subnet]) -> CoreResult<()> {
    let new_cidr = subnets::cidr_of(new);
    for s in existing {
        if s.id == new.id {
            return Err(bad_router(format!(
                "Router already has a port on subnet {}",
                new.id
            )));
        }
        let cidr = subnets::cidr_of(s);
        if new_cidr.contains(&cidr.network()) || cidr.contains(&new_cidr.network()) {
            return Err(bad_router(format!(
                "Cidr {} of subnet {} overlaps with cidr {} of subnet {}",
                new.cidr, new.id, s.cidr, s.id
            )));
        }
    }
    Ok(())
}

/// Every subnet the router touches: its ports' subnets and all of its gateway network's.
async fn router_subnets(tx: &mut Tx<'_>, r: &Router) -> CoreResult<Vec<Subnet>> {
    let mut all = subnets_of_ports(tx, &r.id, INTERFACE_OWNER).await?;
    all.extend(subnets_of_ports(tx, &r.id, GATEWAY_OWNER).await?);
    if let Some(net) = &r.gw_network_id {
        for s in store::subnets::on_network(&mut **tx, net).await? {
            if !all.iter().any(|a| a.id == s.id) {
                all.push(s);
            }
        }
    }
    Ok(all)
}

/// The subnet_id / port_id of an interface body; a bad UUID is worded as the validator does.
fn interface_keys(b: &Map<String, Value>) -> CoreResult<(Option<String>, Option<String>)> {
    let get = |key: &str| -> CoreResult<Option<String>> {
        match b.get(key) {
            None => Ok(None),
            Some(v) => uuid(v).map(Some).map_err(bad_router),
        }
    };
    let (subnet, port) = (get("subnet_id")?, get("port_id")?);
    if subnet.is_none() && port.is_none() {
        return Err(bad_router("Either subnet_id or port_id must be specified"));
    }
    Ok((subnet, port))
}

fn interface_info(r: &Router, port: &Port, subnet_ids: Vec<String>) -> Value {
    json!({
        "id": r.id,
        "project_id": r.project_id,
        "port_id": port.id,
        "network_id": port.network_id,
        "subnet_id": subnet_ids.last(),
        "subnet_ids": subnet_ids,
    })
}

/// `PUT /v2.0/routers/{id}/add_router_interface` with `{"subnet_id": ...}` (a new port on
/// the subnet's gateway IP) or `{"port_id": ...}` (an unused port of the caller's): answers
/// Neutron's interface info. The router is scheduled when this is its first port.
pub async fn add_interface(
    state: &Services,
    ctx: &RequestContext,
    id: &str,
    b: &Map<String, Value>,
) -> CoreResult<Value> {
    let (subnet_id, port_id) = interface_keys(b)?;
    if subnet_id.is_some() && port_id.is_some() {
        return Err(bad_router("Cannot specify both subnet-id and port-id"));
    }
    let mut tx = state.store.begin_write().await?;
    visible(&mut tx, ctx, id).await?;
    ctx.require_write("add_router_interface")?;
    repo::lock(&mut tx, state.store.backend, id).await?;
    let mut r = visible(&mut tx, ctx, id).await?;
    let existing = router_subnets(&mut tx, &r).await?;
    let (port, revision) = match (subnet_id, port_id) {
        (Some(subnet_id), _) => {
            let (subnet, network) = subnets::visible(&mut tx, ctx, &subnet_id).await?;
            if !ctx.owns(&subnet.project_id) && !ctx.owns(&network.project_id) {
                return Err(bad_router(format!(
                    "Cannot add interface to router because subnet {subnet_id} is not owned by project making the request"
                )));
            }
            let Some(gateway_ip) = subnet.gateway_ip.clone() else {
                return Err(bad_router(
                    "Subnet for router interface must have a gateway IP",
                ));
            };
            if subnet.ip_version == 6
                && subnet.ipv6_address_mode.is_some()
                && subnet.ipv6_ra_mode.is_none()
            {
                return Err(bad_router(format!(
                    "IPv6 subnet {subnet_id} configured to receive RAs from an external router cannot be added to Neutron Router."
                )));
            }
            check_overlap(&subnet, &existing)?;
            let b = json!({
                "network_id": subnet.network_id,
                "fixed_ips": [{"subnet_id": subnet.id, "ip_address": gateway_ip}],
                "device_owner": INTERFACE_OWNER,
                "device_id": r.id,
                "name": "",
                "admin_state_up": true,
            });
            make_port(state, &mut tx, &r.id, &r.project_id, as_map(b)).await?
        }
        (None, Some(port_id)) => attach_port(&mut tx, ctx, &r, &port_id, &existing).await?,
        (None, None) => unreachable!("checked by interface_keys"),
    };
    r.updated_at = store::now();
    r.revision_number += 1;
    repo::update(&mut tx, &r).await?;
    let scheduled = l3_scheduling::schedule_or_tell(state, &mut tx, id).await?;
    store::commit(tx).await?;
    state.feed.committed(revision.max(scheduled));
    l3_scheduling::bind_committed(state, id).await;
    let subnet_ids = port.fixed_ips.iter().map(|f| f.subnet_id.clone()).collect();
    Ok(interface_info(&r, &port, subnet_ids))
}

/// Makes an existing port (the caller's, unused, with one IPv4 subnet at most) an interface.
async fn attach_port(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    r: &Router,
    port_id: &str,
    existing: &[Subnet],
) -> CoreResult<(Port, Option<i64>)> {
    let mut port = ports::visible(tx, ctx, port_id).await?;
    if !port.device_id.is_empty() {
        return Err(NeutronError::conflict(
            "PortInUse",
            format!(
                "Unable to complete operation on port {port_id} for network {}. Port already has an attached device {}.",
                port.network_id, port.device_id
            ),
        ));
    }
    if port.fixed_ips.is_empty() {
        return Err(bad_router("Router port must have at least one fixed IP"));
    }
    let mut port_subnets = Vec::new();
    for f in &port.fixed_ips {
        if let Some(s) = store::subnets::get(&mut **tx, &f.subnet_id).await?
            && !port_subnets.iter().any(|p: &Subnet| p.id == s.id)
        {
            port_subnets.push(s);
        }
    }
    if port_subnets.iter().filter(|s| s.ip_version == 4).count() > 1 {
        return Err(bad_router(
            "Cannot have multiple IPv4 subnets on router port",
        ));
    }
    for s in &port_subnets {
        check_overlap(s, existing)?;
    }
    let old_host = port.binding_host.clone();
    port.device_id = r.id.clone();
    port.device_owner = INTERFACE_OWNER.into();
    if let Some(host) = repo::host_of(&mut **tx, &r.id).await? {
        port.binding_host = host;
        crate::port_binding::defer(&mut port);
    }
    port.updated_at = store::now();
    port.revision_number += 1;
    store::ports::update(tx, &port).await?;
    let revision = store::dhcp_hosting::record_port(
        tx,
        &port.network_id,
        &port.id,
        &[&old_host, &port.binding_host],
    )
    .await?;
    Ok((port, revision))
}

/// `PUT /v2.0/routers/{id}/remove_router_interface` with `{"subnet_id"}` and/or
/// `{"port_id"}`: the interface port goes, unless floating IPs or routes need it.
pub async fn remove_interface(
    state: &Services,
    ctx: &RequestContext,
    id: &str,
    b: &Map<String, Value>,
) -> CoreResult<Value> {
    let (subnet_id, port_id) = interface_keys(b)?;
    let mut tx = state.store.begin_write().await?;
    visible(&mut tx, ctx, id).await?;
    ctx.require_write("remove_router_interface")?;
    repo::lock(&mut tx, state.store.backend, id).await?;
    let mut r = visible(&mut tx, ctx, id).await?;
    let port = match (&port_id, &subnet_id) {
        (Some(port_id), _) => {
            let port = store::ports::get(&mut tx, port_id)
                .await?
                .filter(|p| p.device_id == r.id && p.device_owner == INTERFACE_OWNER)
                .ok_or_else(|| {
                    NeutronError::not_found(
                        "RouterInterfaceNotFound",
                        format!("Router {id} does not have an interface with id {port_id}"),
                    )
                })?;
            if let Some(subnet_id) = &subnet_id
                && !port.fixed_ips.iter().any(|f| &f.subnet_id == subnet_id)
            {
                return Err(NeutronError::bad(
                    "SubnetMismatchForPort",
                    format!(
                        "Subnet on port {port_id} does not match the requested subnet {subnet_id}."
                    ),
                ));
            }
            port
        }
        (None, Some(subnet_id)) => {
            let mut found = None;
            for pid in repo::port_ids(&mut *tx, id, INTERFACE_OWNER).await? {
                if let Some(p) = store::ports::get(&mut tx, &pid).await?
                    && p.fixed_ips.iter().any(|f| &f.subnet_id == subnet_id)
                {
                    found = Some(p);
                    break;
                }
            }
            found.ok_or_else(|| {
                NeutronError::not_found(
                    "RouterInterfaceNotFoundForSubnet",
                    format!("Router {id} has no interface on subnet {subnet_id}"),
                )
            })?
        }
        (None, None) => unreachable!("checked by interface_keys"),
    };
    for f in &port.fixed_ips {
        check_interface_unused(&mut tx, &r, &f.subnet_id).await?;
    }
    let mut revision = ports::remove(state, &mut tx, &port).await?;
    r.updated_at = store::now();
    r.revision_number += 1;
    repo::update(&mut tx, &r).await?;
    revision = revision.max(l3_scheduling::tell(&mut tx, id).await?);
    store::commit(tx).await?;
    state.feed.committed(revision);
    let subnet_ids = port.fixed_ips.iter().map(|f| f.subnet_id.clone()).collect();
    Ok(interface_info(&r, &port, subnet_ids))
}

/// An interface on the subnet may not go while the router's floating IPs reach a fixed
/// address there, or a route's nexthop lies there.
async fn check_interface_unused(tx: &mut Tx<'_>, r: &Router, subnet_id: &str) -> CoreResult<()> {
    let Some(subnet) = store::subnets::get(&mut **tx, subnet_id).await? else {
        return Ok(());
    };
    let cidr = subnets::cidr_of(&subnet);
    let inside = |ip: &str| ip.parse::<IpAddr>().is_ok_and(|a| cidr.contains(&a));
    let in_use = |what: &str| {
        NeutronError::conflict(
            &format!("RouterInterfaceInUseBy{what}"),
            format!(
                "Router interface for subnet {subnet_id} on router {} cannot be deleted, as it is required by one or more {}.",
                r.id,
                if what == "Route" {
                    "routes"
                } else {
                    "floating IPs"
                }
            ),
        )
    };
    if fip_repo::of_router(&mut **tx, &r.id)
        .await?
        .iter()
        .any(|f| f.fixed_ip_address.as_deref().is_some_and(inside))
    {
        return Err(in_use("FloatingIP"));
    }
    let routes = routes_of(Some(&serde_json::from_str(&r.routes).unwrap_or(json!([]))))?;
    if routes.iter().any(|(_, nexthop)| cidr.contains(nexthop)) {
        return Err(in_use("Route"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Extra routes.

fn invalid_routes_input(why: impl std::fmt::Display) -> NeutronError {
    NeutronError::bad_request(format!("Invalid input for routes. Reason: {why}"))
}

/// `routes` (`type:hostroutes`): a list of `{"destination": CIDR, "nexthop": IP}`, no
/// duplicates.
fn routes_of(v: Option<&Value>) -> CoreResult<Vec<(IpNet, IpAddr)>> {
    let items = body::list(v, "routes")?.unwrap_or(&[]);
    let mut out: Vec<(IpNet, IpAddr)> = Vec::new();
    for item in items {
        let Some(m) = item.as_object() else {
            return Err(invalid_routes_input(format!(
                "'{item}' is not a dictionary"
            )));
        };
        let mut keys: Vec<&str> = m.keys().map(String::as_str).collect();
        keys.sort_unstable();
        if keys != ["destination", "nexthop"] {
            return Err(invalid_routes_input(format!(
                "Validation of dictionary's keys failed. Expected keys: {{'destination', 'nexthop'}} Provided keys: {{{}}}",
                keys.iter()
                    .map(|k| format!("'{k}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let text = |k: &str| {
            m[k].as_str()
                .map_or_else(|| m[k].to_string(), str::to_string)
        };
        let (dest, hop) = (text("destination"), text("nexthop"));
        let destination: IpNet = dest
            .parse()
            .map_err(|_| invalid_routes_input(format!("'{dest}' is not a valid IP subnet")))?;
        let nexthop: IpAddr = hop
            .parse()
            .map_err(|_| invalid_routes_input(format!("'{hop}' is not a valid IP address")))?;
        if out.contains(&(destination, nexthop)) {
            return Err(invalid_routes_input(format!(
                "Duplicate hostroute '{}'",
                route_repr(&destination, &nexthop)
            )));
        }
        out.push((destination, nexthop));
    }
    Ok(out)
}

/// A route as Python prints its dict (what Neutron's messages show).
fn route_repr(d: &IpNet, n: &IpAddr) -> String {
    format!("{{'destination': '{d}', 'nexthop': '{n}'}}")
}

fn routes_json(routes: &[(IpNet, IpAddr)]) -> String {
    Value::from(
        routes
            .iter()
            .map(|(d, n)| json!({"destination": d.to_string(), "nexthop": n.to_string()}))
            .collect::<Vec<_>>(),
    )
    .to_string()
}

/// Neutron's `_validate_routes`: at most `router_route` routes (its quota, OverQuota since
/// 2026.2), each nexthop on a subnet of the router's ports and not one of the router's own
/// addresses (`InvalidRoutes`). Answers the routes as stored.
async fn check_routes(
    tx: &mut Tx<'_>,
    r: &Router,
    routes: &[(IpNet, IpAddr)],
) -> CoreResult<String> {
    let count = i64::try_from(routes.len()).unwrap_or(i64::MAX);
    quotas::limit_check(tx, &r.project_id, "router_route", count).await?;
    let mut port_ids = repo::port_ids(&mut **tx, &r.id, INTERFACE_OWNER).await?;
    port_ids.extend(repo::port_ids(&mut **tx, &r.id, GATEWAY_OWNER).await?);
    let mut own: Vec<IpAddr> = Vec::new();
    let mut cidrs: Vec<IpNet> = Vec::new();
    for id in &port_ids {
        for f in store::ports::fixed_ips(&mut **tx, id).await? {
            own.extend(f.ip_address.parse::<IpAddr>());
            if let Some(s) = store::subnets::get(&mut **tx, &f.subnet_id).await? {
                cidrs.push(subnets::cidr_of(&s));
            }
        }
    }
    let all = format!(
        "[{}]",
        routes
            .iter()
            .map(|(d, n)| route_repr(d, n))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (_, nexthop) in routes {
        let reason = if !cidrs.iter().any(|c| c.contains(nexthop)) {
            "the nexthop is not connected with router"
        } else if own.contains(nexthop) {
            "the nexthop is used by router"
        } else {
            continue;
        };
        return Err(NeutronError::bad(
            "InvalidRoutes",
            format!("Invalid format for routes: {all}, {reason}."),
        ));
    }
    Ok(routes_json(routes))
}

/// `PUT /v2.0/routers/{id}/add_extraroutes` (`add` true) or `remove_extraroutes`, with
/// `{"router": {"routes": [...]}}`: merged (exact duplicates dropped) or taken away (absent
/// ones ignored), atomically under the router's lock. Answers `{"router": {...}}`.
pub async fn change_routes(
    state: &Services,
    ctx: &RequestContext,
    id: &str,
    b: &Map<String, Value>,
    add: bool,
) -> CoreResult<Value> {
    let b = inner(b, "router")?;
    if let Some(k) = b.keys().find(|k| *k != "routes") {
        return Err(NeutronError::bad_request(format!(
            "Unrecognized attribute(s) '{k}'"
        )));
    }
    let given = routes_of(b.get("routes"))?;
    let mut tx = state.store.begin_write().await?;
    visible(&mut tx, ctx, id).await?;
    ctx.require_write("update_router")?;
    repo::lock(&mut tx, state.store.backend, id).await?;
    let mut r = visible(&mut tx, ctx, id).await?;
    let mut routes = routes_of(Some(&serde_json::from_str(&r.routes).unwrap_or(json!([]))))?;
    if add {
        for route in given {
            if !routes.contains(&route) {
                routes.push(route);
            }
        }
    } else {
        routes.retain(|route| !given.contains(route));
    }
    r.routes = check_routes(&mut tx, &r, &routes).await?;
    r.updated_at = store::now();
    r.revision_number += 1;
    repo::update(&mut tx, &r).await?;
    let revision = l3_scheduling::tell(&mut tx, id).await?;
    store::commit(tx).await?;
    state.feed.committed(revision);
    answer(state, ctx, id).await
}

// ---------------------------------------------------------------------------------------------
// The port API's view of router ports.

/// `DELETE /v2.0/ports/{id}` of a router's or floating IP's own port while that router or
/// floating IP exists: `ServicePortInUse`.
pub async fn check_port_deletable(tx: &mut Tx<'_>, port: &Port) -> CoreResult<()> {
    let owned = match port.device_owner.as_str() {
        INTERFACE_OWNER | GATEWAY_OWNER => repo::get(&mut **tx, &port.device_id).await?.is_some(),
        fip_repo::PORT_OWNER => fip_repo::of_floating_port(&mut **tx, &port.id)
            .await?
            .is_some(),
        _ => false,
    };
    if owned {
        return Err(NeutronError::conflict(
            "ServicePortInUse",
            format!(
                "Port {} cannot be deleted directly via the port API: has device owner {}.",
                port.id, port.device_owner
            ),
        ));
    }
    Ok(())
}

//! Floating IPs as Neutron's L3 API keeps them (`router`, `fip-port-details`): an address on
//! an external network, held by an external port of its own (device_owner
//! `network:floatingip`, no project), associated with a fixed IPv4 address of a port that a
//! router links to that network. A new floating IP is `DOWN` until the router's agent reports
//! it `ACTIVE`. Every change of an association tells the hosts of the routers concerned.
//! `FloatingIPPortAlreadyAssociated` rests on the table's UNIQUE constraint, so two floating
//! IPs associated at once with one fixed address cannot both succeed.

use std::net::IpAddr;

use serde_json::{Map, Value, json};

use crate::error::{CoreResult, NeutronError};
use crate::quotas::Ledger;
use crate::routers::uuid;
use crate::{RequestContext, Services, body, l3_scheduling, networks, ports, subnets};
use neutrino_store::floating_ips::{self as repo, FloatingIp, PORT_OWNER};
use neutrino_store::ports::Port;
use neutrino_store::{self as store, Tx};

pub fn not_found(id: &str) -> NeutronError {
    NeutronError::not_found(
        "FloatingIPNotFound",
        format!("Floating IP {id} could not be found"),
    )
}

/// Neutron's `BadRequest(resource='floatingip', msg=...)`.
fn bad_fip(why: impl std::fmt::Display) -> NeutronError {
    NeutronError::bad("BadRequest", format!("Bad floatingip request: {why}."))
}

/// A floating IP the caller may see (its project's; all for admins), or 404.
pub async fn visible(
    conn: &mut store::Conn,
    ctx: &RequestContext,
    id: &str,
) -> CoreResult<FloatingIp> {
    match repo::get(&mut *conn, id).await? {
        Some(f) if ctx.owns(&f.project_id) => Ok(f),
        _ => Err(not_found(id)),
    }
}

/// `port_details` (`fip-port-details`) of the associated port.
pub fn port_details(p: &Port) -> Value {
    json!({
        "name": p.name, "network_id": p.network_id, "mac_address": p.mac_address,
        "admin_state_up": p.admin_state_up, "status": p.status, "device_id": p.device_id,
        "device_owner": p.device_owner,
    })
}

/// The API dict, with the associated port's details (`null` when not associated).
pub fn to_json(f: &FloatingIp, details: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(f.id));
    m.insert("tenant_id".into(), json!(f.project_id));
    m.insert("project_id".into(), json!(f.project_id));
    m.insert("floating_ip_address".into(), json!(f.floating_ip_address));
    m.insert("floating_network_id".into(), json!(f.floating_network_id));
    m.insert("router_id".into(), json!(f.router_id));
    m.insert("port_id".into(), json!(f.fixed_port_id));
    m.insert("fixed_ip_address".into(), json!(f.fixed_ip_address));
    m.insert("status".into(), json!(f.status));
    m.insert("description".into(), json!(f.description));
    m.insert("port_details".into(), details);
    m.insert("tags".into(), json!([]));
    m.insert("created_at".into(), json!(f.created_at));
    m.insert("updated_at".into(), json!(f.updated_at));
    m.insert("revision_number".into(), json!(f.revision_number));
    m
}

/// The floating IP's API dict read on `conn`, with its tags.
pub async fn render(conn: &mut store::Conn, f: &FloatingIp) -> CoreResult<Map<String, Value>> {
    let details = match &f.fixed_port_id {
        Some(id) => store::ports::get(conn, id)
            .await?
            .map_or(Value::Null, |p| port_details(&p)),
        None => Value::Null,
    };
    let mut m = to_json(f, details);
    let tags = store::tags::of(conn, store::tags::Kind::FloatingIp, &f.id).await?;
    m.insert("tags".into(), json!(tags));
    Ok(m)
}

async fn answer(state: &Services, id: &str) -> CoreResult<Map<String, Value>> {
    let mut conn = state.store.read_conn().await?;
    let f = repo::get(&mut *conn, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    render(&mut conn, &f).await
}

fn optional_uuid(b: &Map<String, Value>, key: &str) -> CoreResult<Option<String>> {
    match b.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => uuid(v).map(Some).map_err(|why| {
            NeutronError::bad_request(format!("Invalid input for {key}. Reason: {why}."))
        }),
    }
}

fn optional_ip(b: &Map<String, Value>, key: &str) -> CoreResult<Option<IpAddr>> {
    match b.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_str()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .map(Some)
            .ok_or_else(|| {
                NeutronError::bad_request(format!(
                    "Invalid input for {key}. Reason: '{}' is not a valid IP address.",
                    v.as_str().map_or_else(|| v.to_string(), str::to_string)
                ))
            }),
    }
}

/// An association: the port, its fixed address and the router serving it.
struct Association {
    port_id: String,
    fixed_ip: String,
    router_id: String,
}

/// Neutron's `_check_and_get_fip_assoc`, its checks in its order.
async fn associate(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    f: &FloatingIp,
    port_id: Option<String>,
    fixed_ip: Option<IpAddr>,
) -> CoreResult<Option<Association>> {
    let Some(port_id) = port_id else {
        if fixed_ip.is_some() {
            return Err(bad_fip(
                "fixed_ip_address cannot be specified without a port_id",
            ));
        }
        return Ok(None);
    };
    let port = store::ports::get(tx, &port_id)
        .await?
        .ok_or_else(|| ports::not_found(&port_id))?;
    if !ctx.is_admin() && port.project_id != ctx.project_id {
        return Err(bad_fip(format!(
            "Cannot process floating IP association with Port {port_id}, since that port is owned by a different project"
        )));
    }
    if port.device_owner == crate::dhcp_scheduling::DHCP_OWNER {
        // Neutron never fills the placeholder of this message.
        return Err(bad_fip(
            "Port %(id)s is unable to be assigned a floating IP",
        ));
    }
    let chosen = match fixed_ip {
        Some(ip) => {
            if !ip.is_ipv4() {
                return Err(bad_fip(format!(
                    "Cannot process floating IP association with {ip}, since that is not an IPv4 address"
                )));
            }
            port.fixed_ips
                .iter()
                .find(|x| x.ip_address.parse::<IpAddr>().ok() == Some(ip))
                .cloned()
                .ok_or_else(|| bad_fip(format!("Port {port_id} does not have fixed ip {ip}")))?
        }
        None => {
            let v4: Vec<_> = port
                .fixed_ips
                .iter()
                .filter(|x| x.ip_address.parse::<IpAddr>().is_ok_and(|a| a.is_ipv4()))
                .collect();
            match v4.as_slice() {
                [] => {
                    return Err(bad_fip(format!(
                        "Cannot add floating IP to port {port_id} that has no fixed IPv4 addresses"
                    )));
                }
                [one] => (*one).clone(),
                _ => {
                    return Err(bad_fip(format!(
                        "Port {port_id} has multiple fixed IPv4 addresses.  Must provide a specific IPv4 address when assigning a floating IP"
                    )));
                }
            }
        }
    };
    let router_id = router_for(tx, &f.floating_network_id, &chosen.subnet_id)
        .await?
        .ok_or_else(|| {
            NeutronError::not_found(
                "ExternalGatewayForFloatingIPNotFound",
                format!(
                    "External network {} is not reachable from subnet {}.  Therefore, cannot associate Port {port_id} with a Floating IP.",
                    f.floating_network_id, chosen.subnet_id
                ),
            )
        })?;
    Ok(Some(Association {
        port_id,
        fixed_ip: chosen.ip_address,
        router_id,
    }))
}

/// Neutron's `get_router_for_floatingip`: a router with an interface on the subnet and a
/// gateway on the floating network, preferring the one on the subnet's gateway IP.
async fn router_for(
    tx: &mut Tx<'_>,
    network_id: &str,
    subnet_id: &str,
) -> CoreResult<Option<String>> {
    let gateway_ip = store::subnets::get(&mut **tx, subnet_id)
        .await?
        .and_then(|s| s.gateway_ip);
    let through = store::routers::with_gateway_on(&mut **tx, network_id).await?;
    let candidates: Vec<(String, String)> =
        store::routers::interfaces_on_subnet(&mut **tx, subnet_id)
            .await?
            .into_iter()
            .filter(|(r, _)| through.contains(r))
            .collect();
    let preferred = candidates
        .iter()
        .find(|(_, ip)| Some(ip) == gateway_ip.as_ref())
        .or(candidates.first());
    Ok(preferred.map(|(r, _)| r.clone()))
}

fn already_associated(f: &FloatingIp, a: &Association) -> NeutronError {
    NeutronError::conflict(
        "FloatingIPPortAlreadyAssociated",
        format!(
            "Cannot associate floating IP {} ({}) with port {} using fixed IP {}, as that fixed IP already has a floating IP on external network {}.",
            f.floating_ip_address, f.id, a.port_id, a.fixed_ip, f.floating_network_id
        ),
    )
}

/// Applies an association (or None) to `f`; checks that no other floating IP of the network
/// holds it (the UNIQUE constraint settles a race).
async fn apply(tx: &mut Tx<'_>, f: &mut FloatingIp, a: Option<&Association>) -> CoreResult<()> {
    if let Some(a) = a
        && repo::of_port(&mut **tx, &a.port_id).await?.iter().any(|o| {
            o.id != f.id
                && o.floating_network_id == f.floating_network_id
                && o.fixed_ip_address.as_deref() == Some(&a.fixed_ip)
        })
    {
        return Err(already_associated(f, a));
    }
    f.fixed_port_id = a.map(|a| a.port_id.clone());
    f.fixed_ip_address = a.map(|a| a.fixed_ip.clone());
    f.router_id = a.map(|a| a.router_id.clone());
    Ok(())
}

/// Tells the hosts of the routers concerned (before and after).
async fn tell(tx: &mut Tx<'_>, routers: &[Option<&String>]) -> CoreResult<Option<i64>> {
    let mut newest = None;
    let mut told: Vec<&String> = Vec::new();
    for r in routers.iter().flatten() {
        if !told.contains(r) {
            newest = newest.max(l3_scheduling::tell(tx, r).await?);
            told.push(r);
        }
    }
    Ok(newest)
}

/// `POST /v2.0/floatingips` with the `floatingip` body (attributes checked by the caller):
/// the external port first (its first IPv4 address becomes the floating IP), then the
/// association. Answers the floating IP's dict.
pub async fn create(
    state: &Services,
    ctx: &RequestContext,
    b: &Map<String, Value>,
) -> CoreResult<Map<String, Value>> {
    ctx.require_write("create_floatingip")?;
    let project = ctx.project_for_create(b)?;
    let network_id = match b.get("floating_network_id") {
        Some(v) => uuid(v).map_err(|why| {
            NeutronError::bad_request(format!(
                "Invalid input for floating_network_id. Reason: {why}."
            ))
        })?,
        None => {
            return Err(NeutronError::bad_request(
                "Failed to parse request. Required attribute 'floating_network_id' not specified",
            ));
        }
    };
    let address = optional_ip(b, "floating_ip_address")?;
    if address.is_some() && !ctx.is_admin() {
        return Err(NeutronError::forbidden(
            "create_floatingip:floating_ip_address",
        ));
    }
    let subnet_id = optional_uuid(b, "subnet_id")?;
    let port_id = optional_uuid(b, "port_id")?;
    let fixed_ip = optional_ip(b, "fixed_ip_address")?;
    let description = body::string(b, "description", 255)?.unwrap_or_default();

    let mut tx = state.store.begin_write().await?;
    Ledger::check(
        &mut tx,
        state.store.backend,
        "floatingip",
        &[(project.clone(), 1)],
    )
    .await?;
    let network = store::networks::get(&mut *tx, &network_id)
        .await?
        .ok_or_else(|| networks::not_found(&network_id))?;
    if !network.external {
        return Err(bad_fip(format!(
            "Network {network_id} is not a valid external network"
        )));
    }
    let on_network = store::subnets::on_network(&mut *tx, &network_id).await?;
    let Some(first_v4) = on_network.iter().find(|s| s.ip_version == 4) else {
        return Err(bad_fip(format!(
            "Network {network_id} does not contain any IPv4 subnet"
        )));
    };
    let mut wanted = json!({});
    match (&subnet_id, address) {
        (Some(s), _) => {
            if !on_network.iter().any(|x| &x.id == s) {
                return Err(subnets::not_found(s));
            }
            wanted["subnet_id"] = json!(s);
        }
        (None, None) => wanted["subnet_id"] = json!(first_v4.id),
        (None, Some(_)) => {}
    }
    if let Some(ip) = address {
        wanted["ip_address"] = json!(ip.to_string());
    }
    let now = store::now();
    let mut f = FloatingIp {
        id: store::new_id(),
        project_id: project,
        description,
        floating_network_id: network_id.clone(),
        status: "DOWN".into(),
        created_at: now.clone(),
        updated_at: now,
        revision_number: 0,
        ..FloatingIp::default()
    };
    let port_body = json!({
        "network_id": network_id,
        "device_owner": PORT_OWNER,
        "device_id": f.id,
        "name": "",
        "fixed_ips": [wanted],
    });
    let Value::Object(port_body) = port_body else {
        unreachable!("a JSON object literal")
    };
    let admin = RequestContext {
        project_id: String::new(),
        user_id: String::new(),
        roles: vec!["admin".into()],
    };
    let draft = ports::draft_in(&mut tx, &admin, &port_body, String::new()).await?;
    let (port, mut revision) =
        ports::write_one_draft(state, &admin, &port_body, draft, &mut tx).await?;
    let Some(ip) = port
        .fixed_ips
        .iter()
        .find(|x| x.ip_address.parse::<IpAddr>().is_ok_and(|a| a.is_ipv4()))
    else {
        return Err(bad_fip(format!(
            "Unable to find any IP address on external network {network_id}"
        )));
    };
    f.floating_ip_address = ip.ip_address.clone();
    f.floating_port_id = port.id.clone();
    let a = associate(&mut tx, ctx, &f, port_id, fixed_ip).await?;
    apply(&mut tx, &mut f, a.as_ref()).await?;
    match repo::insert(&mut tx, &f).await {
        Err(e) if e.is_unique_violation() => {
            return Err(a.map_or_else(
                || NeutronError::internal("a disassociated floating IP collided"),
                |a| already_associated(&f, &a),
            ));
        }
        other => other?,
    }
    revision = revision.max(tell(&mut tx, &[f.router_id.as_ref()]).await?);
    store::commit(tx).await?;
    state.feed.committed(revision);
    answer(state, &f.id).await
}

/// `PUT /v2.0/floatingips/{id}`: `port_id` associates (`null` disassociates; absent keeps the
/// association), `fixed_ip_address` picks the address, `description`.
pub async fn update(
    state: &Services,
    ctx: &RequestContext,
    id: &str,
    b: &Map<String, Value>,
) -> CoreResult<Map<String, Value>> {
    let port_id = optional_uuid(b, "port_id")?;
    let fixed_ip = optional_ip(b, "fixed_ip_address")?;
    let description = body::string(b, "description", 255)?;
    let mut tx = state.store.begin_write().await?;
    let mut f = visible(&mut tx, ctx, id).await?;
    ctx.require_write("update_floatingip")?;
    let old_router = f.router_id.clone();
    if b.contains_key("port_id") {
        let a = associate(&mut tx, ctx, &f, port_id, fixed_ip).await?;
        apply(&mut tx, &mut f, a.as_ref()).await?;
        if f.fixed_port_id.is_none() {
            f.status = "DOWN".into();
        }
    } else if fixed_ip.is_some() {
        return Err(bad_fip(
            "fixed_ip_address cannot be specified without a port_id",
        ));
    }
    if let Some(d) = description {
        f.description = d;
    }
    // As Neutron's `_update_fip_assoc`: the router it went through before this update.
    f.last_known_router_id = old_router.clone();
    f.updated_at = store::now();
    f.revision_number += 1;
    match repo::update(&mut tx, &f).await {
        Err(e) if e.is_unique_violation() => {
            let a = Association {
                port_id: f.fixed_port_id.clone().unwrap_or_default(),
                fixed_ip: f.fixed_ip_address.clone().unwrap_or_default(),
                router_id: String::new(),
            };
            return Err(already_associated(&f, &a));
        }
        other => other?,
    }
    let revision = tell(&mut tx, &[old_router.as_ref(), f.router_id.as_ref()]).await?;
    store::commit(tx).await?;
    state.feed.committed(revision);
    answer(state, id).await
}

/// `DELETE /v2.0/floatingips/{id}`: the floating IP and its external port go; its router's
/// host is told.
pub async fn delete(state: &Services, ctx: &RequestContext, id: &str) -> CoreResult<()> {
    let mut tx = state.store.begin_write().await?;
    let f = visible(&mut tx, ctx, id).await?;
    ctx.require_write("delete_floatingip")?;
    repo::delete(&mut tx, id).await?;
    let mut revision = None;
    if let Some(port) = store::ports::get(&mut tx, &f.floating_port_id).await? {
        revision = ports::remove(state, &mut tx, &port).await?;
    }
    revision = revision.max(tell(&mut tx, &[f.router_id.as_ref()]).await?);
    store::commit(tx).await?;
    state.feed.committed(revision);
    Ok(())
}

/// Before a port is deleted: the floating IPs associated with it are disassociated (they
/// survive, `DOWN`), their routers' hosts told.
pub async fn port_deleted(tx: &mut Tx<'_>, port_id: &str) -> CoreResult<Option<i64>> {
    let mut newest = None;
    for mut f in repo::of_port(&mut **tx, port_id).await? {
        let old_router = f.router_id.take();
        f.fixed_port_id = None;
        f.fixed_ip_address = None;
        f.status = "DOWN".into();
        f.updated_at = store::now();
        f.revision_number += 1;
        repo::update(tx, &f).await?;
        newest = newest.max(tell(tx, &[old_router.as_ref()]).await?);
    }
    Ok(newest)
}

/// A port's new addresses must keep those its floating IPs are associated with (Neutron's
/// check in `update_port`).
pub async fn check_fixed_ips_kept(tx: &mut Tx<'_>, port: &Port) -> CoreResult<()> {
    for f in repo::of_port(&mut **tx, &port.id).await? {
        let kept = f
            .fixed_ip_address
            .as_deref()
            .is_none_or(|ip| port.fixed_ips.iter().any(|x| x.ip_address == ip));
        if !kept {
            return Err(NeutronError::bad_request(format!(
                "Cannot update the fixed_ips of the port {}, because its original fixed_ip has been associated to a floating ip",
                port.id
            )));
        }
    }
    Ok(())
}

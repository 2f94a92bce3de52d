//! `/v2.0/ports`: create (one or bulk), list, show, update, delete, with addresses (IPAM), MACs,
//! security groups, allowed address pairs, extra DHCP options, DNS names and port binding.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::auth::RequestContext;
use super::body::{self, CreateBody};
use super::error::{ApiResult, NeutronError};
use super::openapi::ResourceDoc;
use super::port_attributes as attrs;
use super::port_binding;
use super::query::{CollectionSpec, ListQuery};
use super::{AppState, base_url, listing, networks, strip_json_suffix, subnets};
use neutrino_ipam as ipam;
use neutrino_store::ipam::Allocation;
use neutrino_store::networks::Network;
use neutrino_store::port_writes::{Finished, PortWrites};
use neutrino_store::ports::{FixedIp, Port};
use neutrino_store::subnets::Subnet;
use neutrino_store::{
    self as store, dhcp_hosting, ipam as ipam_store, ports as repo, security_groups,
};

pub const SPEC: CollectionSpec = CollectionSpec {
    collection: "ports",
    filterable: &[
        "id",
        "name",
        "network_id",
        "tenant_id",
        "project_id",
        "mac_address",
        "admin_state_up",
        "status",
        "device_id",
        "device_owner",
        "fixed_ips",
        "port_security_enabled",
        "security_groups",
        "binding:host_id",
        "binding:vnic_type",
        "binding:vif_type",
        "description",
        "dns_name",
        "revision_number",
        "tags",
    ],
    sortable: &[
        "id",
        "name",
        "network_id",
        "tenant_id",
        "project_id",
        "mac_address",
        "admin_state_up",
        "status",
        "device_id",
        "device_owner",
        "binding:host_id",
        "created_at",
        "updated_at",
        "revision_number",
        "description",
    ],
};

const CREATE_ATTRS: &[&str] = &[
    "name",
    "description",
    "tenant_id",
    "project_id",
    "network_id",
    "admin_state_up",
    "mac_address",
    "fixed_ips",
    "device_id",
    "device_owner",
    "security_groups",
    "port_security_enabled",
    "allowed_address_pairs",
    "extra_dhcp_opts",
    "dns_name",
    "binding:host_id",
    "binding:vnic_type",
    "binding:profile",
];
const UPDATE_ATTRS: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "mac_address",
    "fixed_ips",
    "device_id",
    "device_owner",
    "security_groups",
    "port_security_enabled",
    "allowed_address_pairs",
    "extra_dhcp_opts",
    "dns_name",
    "binding:host_id",
    "binding:vnic_type",
    "binding:profile",
];
const READ_ONLY: &[&str] = &[
    "id",
    "tenant_id",
    "project_id",
    "network_id",
    "status",
    "binding:vif_type",
    "binding:vif_details",
    "dns_assignment",
    "created_at",
    "updated_at",
    "revision_number",
    "tags",
];
/// Attributes only an admin may set (Neutron's policy defaults).
const ADMIN_ONLY: &[&str] = &["binding:host_id", "binding:profile"];

pub const DOC: ResourceDoc = ResourceDoc {
    resource: "port",
    spec: &SPEC,
    create: CREATE_ATTRS,
    update: UPDATE_ATTRS,
    read_only: READ_ONLY,
    delete: true,
};

fn not_found(id: &str) -> NeutronError {
    NeutronError::not_found("PortNotFound", format!("Port {id} could not be found."))
}

/// A port's API dict, borrowed from the stored port. The fields are in the order a `Map` keeps
/// its keys (sorted), so that a list serialised straight from these (see [`list`]) is byte for
/// byte the one built from [`to_json`]'s maps.
#[derive(Serialize)]
struct PortDict<'a> {
    admin_state_up: bool,
    allowed_address_pairs: Value,
    #[serde(rename = "binding:host_id", skip_serializing_if = "Option::is_none")]
    binding_host_id: Option<&'a str>,
    #[serde(rename = "binding:profile", skip_serializing_if = "Option::is_none")]
    binding_profile: Option<Value>,
    #[serde(
        rename = "binding:vif_details",
        skip_serializing_if = "Option::is_none"
    )]
    binding_vif_details: Option<Value>,
    #[serde(rename = "binding:vif_type", skip_serializing_if = "Option::is_none")]
    binding_vif_type: Option<&'a str>,
    #[serde(rename = "binding:vnic_type")]
    binding_vnic_type: &'a str,
    created_at: &'a str,
    description: &'a str,
    device_id: &'a str,
    device_owner: &'a str,
    dns_assignment: Value,
    dns_name: &'a str,
    extra_dhcp_opts: Value,
    fixed_ips: Vec<FixedIpDict<'a>>,
    id: &'a str,
    mac_address: &'a str,
    name: &'a str,
    network_id: &'a str,
    port_security_enabled: bool,
    project_id: &'a str,
    revision_number: i64,
    security_groups: Value,
    status: &'a str,
    tags: [&'a str; 0],
    tenant_id: &'a str,
    updated_at: &'a str,
}

#[derive(Serialize)]
struct FixedIpDict<'a> {
    ip_address: &'a str,
    subnet_id: &'a str,
}

impl<'a> PortDict<'a> {
    /// The binding details only for admins.
    fn of(p: &'a Port, admin: bool) -> PortDict<'a> {
        let parse = |t: &str| serde_json::from_str::<Value>(t).unwrap_or(Value::Null);
        PortDict {
            admin_state_up: p.admin_state_up,
            allowed_address_pairs: parse(&p.allowed_address_pairs),
            binding_host_id: admin.then_some(p.binding_host.as_str()),
            binding_profile: admin.then(|| parse(&p.binding_profile)),
            binding_vif_details: admin.then(|| parse(&p.binding_vif_details)),
            binding_vif_type: admin.then_some(p.binding_vif_type.as_str()),
            binding_vnic_type: &p.binding_vnic_type,
            created_at: &p.created_at,
            description: &p.description,
            device_id: &p.device_id,
            device_owner: &p.device_owner,
            dns_assignment: attrs::dns_assignment(&p.dns_name, &p.fixed_ips),
            dns_name: &p.dns_name,
            extra_dhcp_opts: parse(&p.extra_dhcp_opts),
            fixed_ips: p
                .fixed_ips
                .iter()
                .map(|f| FixedIpDict {
                    ip_address: &f.ip_address,
                    subnet_id: &f.subnet_id,
                })
                .collect(),
            id: &p.id,
            mac_address: &p.mac_address,
            name: &p.name,
            network_id: &p.network_id,
            port_security_enabled: p.port_security_enabled,
            project_id: &p.project_id,
            revision_number: p.revision_number,
            security_groups: parse(&p.security_groups),
            status: &p.status,
            tags: [],
            tenant_id: &p.project_id,
            updated_at: &p.updated_at,
        }
    }
}

/// The API dict of a port; the binding details only for admins.
pub fn to_json(p: &Port, admin: bool) -> Map<String, Value> {
    match serde_json::to_value(PortDict::of(p, admin)) {
        Ok(Value::Object(map)) => map,
        _ => unreachable!("a struct of strings, numbers and JSON values is a JSON object"),
    }
}

pub async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    bytes: Bytes,
) -> ApiResult<Response> {
    ctx.require_write("create_port")?;
    let (bodies, bulk) = match body::create_body(&bytes, "port", "ports")? {
        CreateBody::One(b) => (vec![b], false),
        CreateBody::Bulk(v) => (v, true),
    };
    // Checks that need no database run before the write lock is taken.
    let requests = bodies
        .iter()
        .map(|b| check_create(&ctx, b))
        .collect::<ApiResult<Vec<_>>>()?;
    let mut attempt = 0;
    let created = loop {
        match create_all(&state, &ctx, &bodies, &requests).await {
            Err(e) if e.kind == "RetryRequest" && attempt < 3 => attempt += 1,
            other => break other?,
        }
    };
    Ok(body::created("port", "ports", bulk, created))
}

/// Creates every port of the request (all or nothing). The ports are drafted and written in
/// the port writer's transaction, group-committed with other requests' (see port_writer).
async fn create_all(
    state: &AppState,
    ctx: &RequestContext,
    bodies: &[Map<String, Value>],
    projects: &[String],
) -> ApiResult<Vec<Value>> {
    state.port_writer().create(ctx, bodies, projects).await
}

/// Attribute and policy checks of one create body; returns the project the port is for.
fn check_create(ctx: &RequestContext, b: &Map<String, Value>) -> ApiResult<String> {
    body::check_create_attributes(b, CREATE_ATTRS, READ_ONLY)?;
    for admin_only in ADMIN_ONLY {
        if b.contains_key(*admin_only) && !ctx.is_admin() {
            return Err(NeutronError::forbidden(&format!(
                "create_port:{admin_only}"
            )));
        }
    }
    if !b.contains_key("network_id") {
        return Err(NeutronError::bad_request(
            "Failed to parse request. Required attribute 'network_id' not specified",
        ));
    }
    ctx.project_for_create(b)
}

/// A port about to be created: what was read and decided before its rows are written.
/// [`draft_with`] makes one from a create body, [`write_draft`] writes it.
#[derive(Clone)]
pub struct Draft {
    network: Network,
    subnets: Vec<Subnet>,
    port: Port,
    requested_ips: Option<Vec<attrs::IpRequest>>,
    mac_given: bool,
    /// The project's default security group, when it already exists.
    default_group: Option<String>,
}

impl Draft {
    /// The host the port will be bound to when written (the compute API drafts a server's
    /// ports before it has chosen the host).
    pub fn set_binding_host(&mut self, host: &str) {
        self.port.binding_host = host.to_string();
    }
}

/// Drafts a port with the lookups on the read pool (the compute API drafts a server's ports
/// before it takes the write lock).
pub async fn draft(
    state: &AppState,
    ctx: &RequestContext,
    b: &Map<String, Value>,
    project_id: String,
) -> ApiResult<Draft> {
    let mut read = state.store.read_conn().await?;
    draft_in(&mut read, ctx, b, project_id).await
}

/// Drafts a port with the lookups on `conn` (a write transaction, for ports the server makes
/// itself, such as a network's DHCP port).
pub async fn draft_in(
    conn: &mut store::Conn,
    ctx: &RequestContext,
    b: &Map<String, Value>,
    project_id: String,
) -> ApiResult<Draft> {
    draft_with(conn, &mut DraftLookups::default(), ctx, b, project_id).await
}

/// The rows drafts read (a network with its subnets, a project's default security group),
/// read once however many of its ports are drafted: a batch of creates on one network reads
/// them once instead of once a port.
#[derive(Default)]
pub struct DraftLookups {
    networks: HashMap<String, Option<(Network, Vec<Subnet>)>>,
    default_groups: HashMap<String, Option<String>>,
    /// SQLite's `data_version` when they were read.
    read_at: Option<i64>,
}

impl DraftLookups {
    /// Call at the start of each write transaction on the connection the lookups were made
    /// on: forgets them unless nothing can have changed since. On SQLite that is when no other
    /// connection (another server sharing the file) has committed since, which
    /// `PRAGMA data_version` tells (the connection's own commits leave it alone, and the
    /// transaction holds the write lock from here on). On PostgreSQL they are always forgotten.
    pub async fn revalidate(
        &mut self,
        conn: &mut store::Conn,
        backend: store::Backend,
    ) -> store::Result<()> {
        let version = store::data_version(backend, conn).await?;
        if version.is_none() || version != self.read_at {
            *self = DraftLookups {
                read_at: version,
                ..DraftLookups::default()
            };
        }
        Ok(())
    }

    /// Reads the networks of `ids` not read yet, with their subnets, in two statements
    /// however many (a batch of creates spread over many networks).
    pub async fn prefetch(&mut self, conn: &mut store::Conn, ids: &[String]) -> ApiResult<()> {
        let unknown: Vec<String> = ids
            .iter()
            .filter(|id| !self.networks.contains_key(*id))
            .cloned()
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let found = store::networks::get_many(&mut *conn, &unknown).await?;
        let found_ids: Vec<String> = found.iter().map(|n| n.id.clone()).collect();
        let mut subnets = store::subnets::on_networks(&mut *conn, &found_ids).await?;
        for id in unknown {
            self.networks.insert(id, None);
        }
        for n in found {
            let on = subnets.remove(&n.id).unwrap_or_default();
            self.networks.insert(n.id.clone(), Some((n, on)));
        }
        Ok(())
    }

    /// The subnets a batch's default addresses may come from: every pooled (not SLAAC)
    /// subnet of the networks read.
    pub fn pooled_subnets(&self, network_ids: &[String]) -> Vec<String> {
        network_ids
            .iter()
            .filter_map(|id| self.networks.get(id).and_then(Option::as_ref))
            .flat_map(|(_, subnets)| subnets.iter().filter(|s| !subnets::is_eui64(s)))
            .map(|s| s.id.clone())
            .collect()
    }

    async fn network(
        &mut self,
        conn: &mut store::Conn,
        ctx: &RequestContext,
        id: &str,
    ) -> ApiResult<(Network, Vec<Subnet>)> {
        if !self.networks.contains_key(id) {
            let found = match store::networks::get(&mut *conn, id).await? {
                Some(n) => {
                    let subnets = store::subnets::on_network(&mut *conn, &n.id).await?;
                    Some((n, subnets))
                }
                None => None,
            };
            self.networks.insert(id.to_string(), found);
        }
        match &self.networks[id] {
            Some((n, subnets)) if networks::visible_to(ctx, n) => Ok((n.clone(), subnets.clone())),
            _ => Err(networks::not_found(id)),
        }
    }

    async fn default_group(
        &mut self,
        conn: &mut store::Conn,
        project_id: &str,
    ) -> ApiResult<Option<String>> {
        if !self.default_groups.contains_key(project_id) {
            let found = security_groups::find_default(&mut *conn, project_id).await?;
            self.default_groups.insert(project_id.to_string(), found);
        }
        Ok(self.default_groups[project_id].clone())
    }
}

/// Drafts a port from a create body (the caller checked its attributes and policy) with the
/// lookups on `conn`, through `lookups`.
pub async fn draft_with(
    conn: &mut store::Conn,
    lookups: &mut DraftLookups,
    ctx: &RequestContext,
    b: &Map<String, Value>,
    project_id: String,
) -> ApiResult<Draft> {
    let network_id = body::string(b, "network_id", 255)?.unwrap_or_default();
    let (network, subnets) = lookups.network(conn, ctx, &network_id).await?;
    if !ctx.owns(&network.project_id) && !network.shared {
        return Err(NeutronError::forbidden("create_port"));
    }
    let default_group = lookups.default_group(conn, &project_id).await?;
    let requested_ips = attrs::fixed_ips(b)?;
    let device_owner = body::string_or_empty(b, "device_owner", 255)?.unwrap_or_default();
    let port_security =
        body::boolean(b, "port_security_enabled")?.unwrap_or(network.port_security_enabled);
    let mac_given = b.get("mac_address").map(attrs::mac).transpose()?;
    let now = store::now();
    let mut port = Port {
        id: store::new_id(),
        project_id,
        network_id: network.id.clone(),
        name: body::string(b, "name", 255)?.unwrap_or_default(),
        description: body::string(b, "description", 255)?.unwrap_or_default(),
        // A generated MAC is chosen when the port is written (see `write_draft`).
        mac_address: mac_given.clone().map(|m| m.0).unwrap_or_default(),
        admin_state_up: body::boolean(b, "admin_state_up")?.unwrap_or(true),
        status: "DOWN".into(),
        device_id: body::string_or_empty(b, "device_id", 255)?.unwrap_or_default(),
        device_owner,
        port_security_enabled: port_security,
        security_groups: "[]".into(),
        allowed_address_pairs: "[]".into(),
        extra_dhcp_opts: attrs::extra_dhcp_opts(b.get("extra_dhcp_opts"), "[]")?,
        dns_name: attrs::dns_name(b)?.unwrap_or_default(),
        binding_host: body::string_or_empty(b, "binding:host_id", 255)?.unwrap_or_default(),
        binding_vnic_type: attrs::vnic_type(b)?.unwrap_or_else(|| "normal".into()),
        binding_profile: attrs::profile(b)?.unwrap_or_else(|| "{}".into()),
        created_at: now.clone(),
        updated_at: now,
        revision_number: 1,
        ..Port::default()
    };
    port.allowed_address_pairs =
        attrs::address_pairs(b.get("allowed_address_pairs"), &port)?.unwrap_or_else(|| "[]".into());
    Ok(Draft {
        network,
        subnets,
        port,
        requested_ips,
        mac_given: mac_given.is_some(),
        default_group,
    })
}

/// Writes a drafted port: security groups, addresses, binding, the row (at once or held back
/// in `writes`, which the caller finishes before commit) and the change-feed entry for the
/// hosts concerned (written by that finish, which returns the revision to pass to
/// `state.feed` after commit). The foreign keys
/// catch a network or subnet deleted since the draft was made.
pub async fn write_draft(
    state: &AppState,
    ctx: &RequestContext,
    b: &Map<String, Value>,
    d: Draft,
    tx: &mut store::Tx<'_>,
    writes: &mut PortWrites,
) -> ApiResult<Port> {
    let Draft {
        network,
        subnets,
        mut port,
        requested_ips,
        mac_given,
        default_group,
    } = d;
    // The MAC first: SLAAC addresses, address pairs and the binding are made from it.
    if mac_given {
        if !writes.given_mac(tx, &network.id, &port.mac_address).await? {
            return Err(mac_in_use(&network.id, &port.mac_address));
        }
    } else {
        port.mac_address = writes
            .generated_mac(tx, &state.config.mac_generator, &network.id)
            .await?
            .ok_or_else(|| mac_generation_failure(&network.id))?;
        // Pairs without a MAC of their own take the port's.
        if let Some(pairs) = attrs::address_pairs(b.get("allowed_address_pairs"), &port)? {
            port.allowed_address_pairs = pairs;
        }
    }
    port.security_groups =
        security_groups_for(tx, ctx, b.get("security_groups"), &port, default_group).await?;
    port.fixed_ips = allocate(
        state,
        tx,
        writes,
        &network,
        &subnets,
        requested_ips,
        &port,
        0,
    )
    .await?;
    port_binding::bind(state, &mut port, &network, tx).await?;
    match writes.insert_port(tx, &port).await {
        Ok(true) => {
            writes
                .port_changed(tx, &port, &[&port.binding_host])
                .await?;
            Ok(port)
        }
        // The MAC was free when chosen above, so only a port written since by a transaction
        // running beside this one (another server sharing PostgreSQL) can hold it: the
        // caller's choice is refused; a generated one makes the whole request run again.
        Ok(false) if mac_given => Err(mac_in_use(&network.id, &port.mac_address)),
        Ok(false) => Err(retry_request()),
        Err(e) if e.is_foreign_key_violation() => Err(networks::not_found(&network.id)),
        Err(e) => Err(e.into()),
    }
}

/// [`write_draft`] for one port written at once, in a transaction that does other work too
/// (a server's NICs, a network's DHCP port).
pub async fn write_one_draft(
    state: &AppState,
    ctx: &RequestContext,
    b: &Map<String, Value>,
    d: Draft,
    tx: &mut store::Tx<'_>,
) -> ApiResult<(Port, Option<i64>)> {
    let mut writes = PortWrites::alone();
    let port = write_draft(state, ctx, b, d, tx, &mut writes).await?;
    // Alone, rows are written at once (refusals are known already); finishing gives the
    // lowest free ranges back to IPAM and writes the feed entry.
    match writes.finish(tx).await? {
        Finished::Written { revision } => Ok((port, revision)),
        Finished::Refused => Err(NeutronError::internal(
            "a port written alone was refused only at the end of its transaction",
        )),
    }
}

/// An internal error asking the handler to run the whole request again.
fn retry_request() -> NeutronError {
    NeutronError::conflict("RetryRequest", "a generated value collided; retrying")
}

/// Neutron's answer when `mac_generation_retries` MACs in a row were taken.
fn mac_generation_failure(network_id: &str) -> NeutronError {
    NeutronError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "MacAddressGenerationFailure",
        format!("Unable to generate unique mac on network {network_id}."),
    )
}

fn mac_in_use(network_id: &str, mac: &str) -> NeutronError {
    NeutronError::conflict(
        "MacAddressInUse",
        format!(
            "Unable to complete operation for network {network_id}. The mac address {mac} is in use."
        ),
    )
}

/// The port's groups: those given (which must exist and be the project's), else the
/// project's default group when port security is on (not for Neutron's own `network:` ports).
async fn security_groups_for(
    tx: &mut store::Tx<'_>,
    ctx: &RequestContext,
    given: Option<&Value>,
    port: &Port,
    known_default: Option<String>,
) -> ApiResult<String> {
    let ids = match given {
        None | Some(Value::Null) => {
            if port.port_security_enabled && !port.device_owner.starts_with("network:") {
                match known_default {
                    Some(id) => vec![id],
                    None => vec![security_groups::default_for(tx, &port.project_id).await?],
                }
            } else {
                Vec::new()
            }
        }
        Some(v) => {
            let ids = attrs::id_list(v, "security_groups")?;
            let owner = (!ctx.is_admin()).then_some(port.project_id.as_str());
            let found = security_groups::usable(tx, &ids, owner).await?;
            if let Some(missing) = ids.iter().find(|id| !found.contains(id)) {
                return Err(NeutronError::not_found(
                    "SecurityGroupNotFound",
                    format!("Security group {missing} does not exist"),
                ));
            }
            ids
        }
    };
    if !ids.is_empty() && !port.port_security_enabled {
        return Err(NeutronError::bad(
            "PortSecurityAndIPRequiredForSecurityGroups",
            "Port security must be enabled and port must have an IP address in order to use security groups.",
        ));
    }
    Ok(Value::from(ids).to_string())
}

/// Addresses for a new port: the requested ones, or Neutron's defaults (one IPv4 address from
/// the first IPv4 subnet with room, one from the first stateful IPv6 subnet with room, and an
/// EUI-64 address on every SLAAC / DHCPv6-stateless subnet).
#[allow(clippy::too_many_arguments)]
async fn allocate(
    state: &AppState,
    tx: &mut store::Tx<'_>,
    writes: &mut PortWrites,
    network: &Network,
    subnets: &[Subnet],
    requested: Option<Vec<attrs::IpRequest>>,
    port: &Port,
    first_position: usize,
) -> ApiResult<Vec<FixedIp>> {
    let mac = ipam::normalize_mac(&port.mac_address)
        .map(|m| m.1)
        .unwrap_or_default();
    let mut out = Vec::new();
    let at = |out: &Vec<FixedIp>| first_position + out.len();
    let Some(requested) = requested else {
        for version in [4, 6] {
            let pooled: Vec<&Subnet> = subnets
                .iter()
                .filter(|s| s.ip_version == version && !subnets::is_eui64(s))
                .collect();
            if pooled.is_empty() {
                continue;
            }
            let mut got = None;
            for s in pooled {
                if let Some(ip) = take_lowest(state, tx, writes, s).await? {
                    got = Some((s, ip));
                    break;
                }
            }
            let Some((s, ip)) = got else {
                return Err(NeutronError::conflict(
                    "IpAddressGenerationFailure",
                    format!("No more IP addresses available on network {}.", network.id),
                ));
            };
            out.push(record(tx, writes, s, ip, port, at(&out)).await?);
        }
        if !port.device_owner.starts_with("network:router") {
            for s in subnets.iter().filter(|s| subnets::is_eui64(s)) {
                let ip = ipam::eui64(&subnets::cidr_of(s), mac);
                out.push(claim(state, tx, writes, s, ip, port, at(&out)).await?);
            }
        }
        return Ok(out);
    };
    for r in requested {
        let subnet = match (&r.subnet_id, r.ip) {
            (Some(id), _) => subnets.iter().find(|s| &s.id == id).ok_or_else(|| {
                NeutronError::invalid_input(format!(
                    "Failed to create port on network {}, because fixed_ips included invalid subnet {id}.",
                    network.id
                ))
            })?,
            (None, Some(ip)) => subnets
                .iter()
                .find(|s| ipam::is_usable(&subnets::cidr_of(s), ip))
                .ok_or_else(|| {
                    NeutronError::bad(
                        "InvalidIpForNetwork",
                        format!(
                            "IP address {ip} is not a valid IP for any of the subnets on the specified network."
                        ),
                    )
                })?,
            (None, None) => unreachable!("attrs::fixed_ips refuses empty items"),
        };
        let fixed = match r.ip {
            Some(ip) => {
                if !ipam::is_usable(&subnets::cidr_of(subnet), ip) {
                    return Err(NeutronError::bad(
                        "InvalidIpForSubnet",
                        format!("IP address {ip} is not a valid IP for the specified subnet."),
                    ));
                }
                claim(state, tx, writes, subnet, ip, port, at(&out)).await?
            }
            None if subnets::is_eui64(subnet) => {
                let ip = ipam::eui64(&subnets::cidr_of(subnet), mac);
                claim(state, tx, writes, subnet, ip, port, at(&out)).await?
            }
            None => {
                let ip = take_lowest(state, tx, writes, subnet)
                    .await?
                    .ok_or_else(|| {
                        NeutronError::conflict(
                            "IpAddressGenerationFailure",
                            format!("No more IP addresses available for subnet {}.", subnet.id),
                        )
                    })?;
                record(tx, writes, subnet, ip, port, at(&out)).await?
            }
        };
        out.push(fixed);
    }
    Ok(out)
}

async fn take_lowest(
    state: &AppState,
    tx: &mut store::Tx<'_>,
    writes: &mut PortWrites,
    s: &Subnet,
) -> ApiResult<Option<u128>> {
    if !writes.lowest.holds(&s.id) {
        ipam_store::lock_subnet(tx, state.store.backend, &s.id).await?;
    }
    Ok(writes.lowest.take(tx, &s.id).await?)
}

/// Claims a specific address: out of the free ranges if it is in a pool, and recorded for the
/// port (409 when someone holds it).
async fn claim(
    state: &AppState,
    tx: &mut store::Tx<'_>,
    writes: &mut PortWrites,
    s: &Subnet,
    ip: IpAddr,
    port: &Port,
    position: usize,
) -> ApiResult<FixedIp> {
    ipam_store::lock_subnet(tx, state.store.backend, &s.id).await?;
    // The free ranges as stored must show the addresses taken so far.
    writes.lowest.flush_subnet(tx, &s.id).await?;
    ipam_store::take_specific(tx, &s.id, ipam::to_u128(ip)).await?;
    record(tx, writes, s, ipam::to_u128(ip), port, position).await
}

async fn record(
    tx: &mut store::Tx<'_>,
    writes: &mut PortWrites,
    s: &Subnet,
    ip: u128,
    port: &Port,
    position: usize,
) -> ApiResult<FixedIp> {
    let address = ipam::from_u128(ip, s.ip_version as u8).to_string();
    let allocation = Allocation {
        subnet_id: s.id.clone(),
        ip,
        ip_address: address.clone(),
        port_id: port.id.clone(),
        position: position as i64,
    };
    if !writes.record(tx, allocation).await? {
        return Err(NeutronError::conflict(
            "IpAddressAlreadyAllocated",
            format!("IP address {address} already allocated in subnet {}", s.id),
        ));
    }
    Ok(FixedIp {
        subnet_id: s.id.clone(),
        ip_address: address,
    })
}

/// Gives a port's addresses back: forgotten, and returned to the free ranges when inside the
/// subnet's pools.
async fn release(state: &AppState, tx: &mut store::Tx<'_>, fixed: &[FixedIp]) -> ApiResult<()> {
    for f in fixed {
        let Some(s) = store::subnets::get(&mut **tx, &f.subnet_id).await? else {
            continue;
        };
        let Ok(ip) = f.ip_address.parse::<IpAddr>() else {
            continue;
        };
        let ip = ipam::to_u128(ip);
        ipam_store::lock_subnet(tx, state.store.backend, &s.id).await?;
        ipam_store::forget(tx, &s.id, ip).await?;
        if subnets::pools_of(&s)
            .iter()
            .any(|r| (r.first..=r.last).contains(&ip))
        {
            ipam_store::give_back(tx, &s.id, ip).await?;
        }
    }
    Ok(())
}

/// A port the caller may see (its own; every port for admins), or 404.
async fn visible(conn: &mut store::Conn, ctx: &RequestContext, id: &str) -> ApiResult<Port> {
    match repo::get(conn, id).await? {
        Some(p) if ctx.owns(&p.project_id) => Ok(p),
        _ => Err(not_found(id)),
    }
}

/// Attributes only admins see in a port's dict.
const ADMIN_SHOWN: &[&str] = &[
    "binding:host_id",
    "binding:profile",
    "binding:vif_details",
    "binding:vif_type",
];

/// Ports as a list reads them.
struct PortRows {
    store: store::Store,
    admin: bool,
    /// Whether their addresses are read (the answer or a filter needs them).
    addresses: bool,
}

impl listing::Source for PortRows {
    type Row = Port;

    fn table(&self) -> &'static store::listing::Table {
        &repo::TABLE
    }

    fn fetch(
        &self,
        req: &store::listing::Request,
    ) -> impl Future<Output = store::Result<Vec<(Port, store::listing::Key)>>> + Send {
        repo::page(&self.store, req, self.addresses)
    }

    fn id(p: &Port) -> &str {
        &p.id
    }

    fn item(&self, p: &Port) -> Map<String, Value> {
        to_json(p, self.admin)
    }

    fn write(&self, p: &Port, fields: &[String], out: &mut Vec<u8>) {
        write_port(p, self.admin, fields, out)
    }
}

/// A port's API dict straight from the port, without a `Map` (or with `fields`, a `Map` of only
/// those).
fn write_port(p: &Port, admin: bool, fields: &[String], out: &mut Vec<u8>) {
    if fields.is_empty() {
        listing::write_json(out, &PortDict::of(p, admin));
    } else {
        let item: Map<String, Value> = fields
            .iter()
            .filter_map(|f| Some((f.clone(), field(p, admin, f)?)))
            .collect();
        listing::write_json(out, &item);
    }
}

/// One attribute of a port's API dict (what [`to_json`] holds under `name`), built alone.
fn field(p: &Port, admin: bool, name: &str) -> Option<Value> {
    let parse = |t: &str| serde_json::from_str::<Value>(t).unwrap_or(Value::Null);
    let admin_only = |v: Value| admin.then_some(v);
    Some(match name {
        "admin_state_up" => json!(p.admin_state_up),
        "allowed_address_pairs" => parse(&p.allowed_address_pairs),
        "binding:host_id" => admin_only(json!(p.binding_host))?,
        "binding:profile" => admin_only(parse(&p.binding_profile))?,
        "binding:vif_details" => admin_only(parse(&p.binding_vif_details))?,
        "binding:vif_type" => admin_only(json!(p.binding_vif_type))?,
        "binding:vnic_type" => json!(p.binding_vnic_type),
        "created_at" => json!(p.created_at),
        "description" => json!(p.description),
        "device_id" => json!(p.device_id),
        "device_owner" => json!(p.device_owner),
        "dns_assignment" => attrs::dns_assignment(&p.dns_name, &p.fixed_ips),
        "dns_name" => json!(p.dns_name),
        "extra_dhcp_opts" => parse(&p.extra_dhcp_opts),
        "fixed_ips" => json!(
            p.fixed_ips
                .iter()
                .map(|f| json!({"ip_address": f.ip_address, "subnet_id": f.subnet_id}))
                .collect::<Vec<_>>()
        ),
        "id" => json!(p.id),
        "mac_address" => json!(p.mac_address),
        "name" => json!(p.name),
        "network_id" => json!(p.network_id),
        "port_security_enabled" => json!(p.port_security_enabled),
        "project_id" => json!(p.project_id),
        "revision_number" => json!(p.revision_number),
        "security_groups" => parse(&p.security_groups),
        "status" => json!(p.status),
        "tags" => json!([]),
        "tenant_id" => json!(p.project_id),
        "updated_at" => json!(p.updated_at),
        _ => return None,
    })
}

pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let query = ListQuery::parse(q.as_deref(), &SPEC)?;
    let admin = ctx.is_admin();
    let plan = query.plan(&repo::TABLE, if admin { &[] } else { ADMIN_SHOWN });
    let source = PortRows {
        store: state.store.clone(),
        admin,
        addresses: plan.checks_rows() || query.wants("fixed_ips") || query.wants("dns_assignment"),
    };
    listing::respond(
        &state.store,
        source,
        &query,
        plan,
        (!admin).then(|| ctx.project_id.clone()),
        format!("{}/v2.0/ports", base_url(&headers)),
        not_found,
    )
    .await
}

pub async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let id = strip_json_suffix(&id);
    let query = ListQuery::parse_fields(q.as_deref(), &SPEC);
    let mut conn = state.store.read_conn().await?;
    let p = visible(&mut conn, &ctx, id).await?;
    Ok(Json(
        json!({"port": query.project(to_json(&p, ctx.is_admin()))}),
    ))
}

/// `GET /v2.0/ports/{id}/binding`: every driver's decision and reason at the last binding.
pub async fn show_binding(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut conn = state.store.read_conn().await?;
    let p = visible(&mut conn, &ctx, &id).await?;
    if !ctx.is_admin() {
        return Err(NeutronError::forbidden("get_port:binding"));
    }
    let result = p
        .binding_result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or_else(|| json!({"host": p.binding_host, "status": "unbound", "decisions": []}));
    Ok(Json(json!({"binding": result})))
}

pub async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let id = strip_json_suffix(&id);
    let b = body::update_body(&bytes, "port")?;
    body::check_attributes(&b, UPDATE_ATTRS, READ_ONLY)?;
    let mut tx = state.store.begin_write().await?;
    let mut p = visible(&mut tx, &ctx, id).await?;
    ctx.require_write("update_port")?;
    for admin_only in ADMIN_ONLY.iter().chain(&["mac_address"]) {
        if b.contains_key(*admin_only) && !ctx.is_admin() {
            return Err(NeutronError::forbidden(&format!(
                "update_port:{admin_only}"
            )));
        }
    }
    let network = store::networks::get(&mut *tx, &p.network_id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if let Some(name) = body::string(&b, "name", 255)? {
        p.name = name;
    }
    if let Some(d) = body::string(&b, "description", 255)? {
        p.description = d;
    }
    if let Some(d) = body::string_or_empty(&b, "device_id", 255)? {
        p.device_id = d;
    }
    if let Some(d) = body::string_or_empty(&b, "device_owner", 255)? {
        p.device_owner = d;
    }
    p.admin_state_up = body::boolean(&b, "admin_state_up")?.unwrap_or(p.admin_state_up);
    p.port_security_enabled =
        body::boolean(&b, "port_security_enabled")?.unwrap_or(p.port_security_enabled);
    if let Some(v) = b.get("mac_address") {
        p.mac_address = attrs::mac(v)?.0;
    }
    if let Some(dns) = attrs::dns_name(&b)? {
        p.dns_name = dns;
    }
    if b.contains_key("extra_dhcp_opts") {
        p.extra_dhcp_opts = attrs::extra_dhcp_opts(b.get("extra_dhcp_opts"), &p.extra_dhcp_opts)?;
    }
    if let Some(pairs) = attrs::address_pairs(b.get("allowed_address_pairs"), &p)? {
        p.allowed_address_pairs = pairs;
    } else if !p.port_security_enabled && p.allowed_address_pairs != "[]" {
        return Err(attrs::pairs_need_port_security());
    }
    if b.contains_key("security_groups") {
        p.security_groups =
            security_groups_for(&mut tx, &ctx, b.get("security_groups"), &p, None).await?;
    } else if !p.port_security_enabled && p.security_groups != "[]" {
        return Err(NeutronError::conflict(
            "PortSecurityPortHasSecurityGroup",
            "Port has security group associated. Cannot disable port security or ip address until security group is removed",
        ));
    }
    if let Some(requested) = attrs::fixed_ips(&b)? {
        p.fixed_ips = reallocate(&state, &mut tx, &network, &p, requested).await?;
    }
    let rebind = ["binding:host_id", "binding:vnic_type", "binding:profile"]
        .iter()
        .any(|k| b.contains_key(*k));
    let old_host = p.binding_host.clone();
    if let Some(host) = body::string_or_empty(&b, "binding:host_id", 255)? {
        p.binding_host = host;
    }
    if p.binding_host != old_host {
        // Wired on no host yet, as in Neutron: the new host's agent reports it up.
        p.status = "DOWN".into();
    }
    if let Some(vnic) = attrs::vnic_type(&b)? {
        p.binding_vnic_type = vnic;
    }
    if let Some(profile) = attrs::profile(&b)? {
        p.binding_profile = profile;
    }
    if rebind {
        port_binding::bind(&state, &mut p, &network, &mut tx).await?;
    }
    p.updated_at = store::now();
    p.revision_number += 1;
    repo::update(&mut tx, &p).await.map_err(|e| {
        if e.is_unique_violation() {
            mac_in_use(&p.network_id, &p.mac_address)
        } else {
            e.into()
        }
    })?;
    let revision =
        dhcp_hosting::record_port(&mut tx, &p.network_id, &p.id, &[&old_host, &p.binding_host])
            .await?;
    store::commit(tx).await?;
    state.feed.committed(revision);
    Ok(Json(json!({"port": to_json(&p, ctx.is_admin())})))
}

/// New addresses for an existing port: requested addresses it already holds are kept (a
/// subnet-only request keeps its address on that subnet), the rest are released, new ones
/// allocated.
async fn reallocate(
    state: &AppState,
    tx: &mut store::Tx<'_>,
    network: &Network,
    port: &Port,
    requested: Vec<attrs::IpRequest>,
) -> ApiResult<Vec<FixedIp>> {
    let mut kept: Vec<FixedIp> = Vec::new();
    let mut new_requests = Vec::new();
    for r in requested {
        let held = port.fixed_ips.iter().find(|f| {
            !kept.contains(f)
                && match (&r.subnet_id, r.ip) {
                    (_, Some(ip)) => {
                        f.ip_address.parse::<IpAddr>().ok() == Some(ip)
                            && r.subnet_id.as_ref().is_none_or(|s| s == &f.subnet_id)
                    }
                    (Some(s), None) => s == &f.subnet_id,
                    (None, None) => false,
                }
        });
        match held {
            Some(f) => kept.push(f.clone()),
            None => new_requests.push(r),
        }
    }
    let dropped: Vec<FixedIp> = port
        .fixed_ips
        .iter()
        .filter(|f| !kept.contains(f))
        .cloned()
        .collect();
    release(state, tx, &dropped).await?;
    // Kept addresses are recorded again below, in their new positions.
    for f in &kept {
        if let Ok(ip) = f.ip_address.parse::<IpAddr>() {
            ipam_store::forget(tx, &f.subnet_id, ipam::to_u128(ip)).await?;
        }
    }
    let subnets = store::subnets::on_network(&mut **tx, &network.id).await?;
    let mut writes = PortWrites::alone();
    let mut all = Vec::new();
    for (position, f) in kept.iter().enumerate() {
        let Some(s) = subnets.iter().find(|s| s.id == f.subnet_id) else {
            continue;
        };
        if let Ok(ip) = f.ip_address.parse::<IpAddr>() {
            all.push(record(tx, &mut writes, s, ipam::to_u128(ip), port, position).await?);
        }
    }
    if !new_requests.is_empty() {
        let first = all.len();
        let fresh = allocate(
            state,
            tx,
            &mut writes,
            network,
            &subnets,
            Some(new_requests),
            port,
            first,
        );
        all.extend(fresh.await?);
    }
    // Alone, nothing is held back but what was taken from the free ranges.
    writes.finish(tx).await?;
    Ok(all)
}

pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = strip_json_suffix(&id);
    let mut tx = state.store.begin_write().await?;
    let p = visible(&mut tx, &ctx, id).await?;
    ctx.require_write("delete_port")?;
    let revision = remove(&state, &mut tx, &p).await?;
    store::commit(tx).await?;
    state.feed.committed(revision);
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a port: its addresses given back, its row gone, its hosts told.
pub async fn remove(state: &AppState, tx: &mut store::Tx<'_>, p: &Port) -> ApiResult<Option<i64>> {
    release(state, tx, &p.fixed_ips).await?;
    let revision = dhcp_hosting::record_port(tx, &p.network_id, &p.id, &[&p.binding_host]).await?;
    repo::delete(tx, &p.id).await?;
    Ok(revision)
}

/// Gives an existing port an address on each of `wanted` it has none on, and gives back its
/// addresses on subnets not in `wanted` (a DHCP port following its network's DHCP subnets).
/// Returns whether anything changed; the caller writes the row.
pub async fn align_addresses(
    state: &AppState,
    tx: &mut store::Tx<'_>,
    network: &Network,
    port: &mut Port,
    wanted: &[Subnet],
) -> ApiResult<bool> {
    let (kept, dropped): (Vec<FixedIp>, Vec<FixedIp>) = port
        .fixed_ips
        .iter()
        .cloned()
        .partition(|f| wanted.iter().any(|s| s.id == f.subnet_id));
    let missing: Vec<attrs::IpRequest> = wanted
        .iter()
        .filter(|s| !kept.iter().any(|f| f.subnet_id == s.id))
        .map(|s| attrs::IpRequest {
            subnet_id: Some(s.id.clone()),
            ip: None,
        })
        .collect();
    if dropped.is_empty() && missing.is_empty() {
        return Ok(false);
    }
    release(state, tx, &dropped).await?;
    let subnets = store::subnets::on_network(&mut **tx, &network.id).await?;
    let mut writes = PortWrites::alone();
    let added = allocate(
        state,
        tx,
        &mut writes,
        network,
        &subnets,
        Some(missing),
        port,
        kept.len(),
    )
    .await?;
    writes.finish(tx).await?;
    port.fixed_ips = kept;
    port.fixed_ips.extend(added);
    Ok(true)
}

/// `PUT` or `DELETE` on the collection.
pub async fn no_collection_action() -> NeutronError {
    not_found("None")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(id: &str, ips: &[&str], host: &str) -> Port {
        Port {
            id: id.into(),
            project_id: "p1".into(),
            network_id: "n1".into(),
            name: format!("port {id}"),
            mac_address: "fa:16:3e:00:00:01".into(),
            admin_state_up: true,
            status: "DOWN".into(),
            security_groups: r#"["sg1"]"#.into(),
            allowed_address_pairs:
                r#"[{"ip_address":"10.0.0.9","mac_address":"fa:16:3e:00:00:01"}]"#.into(),
            extra_dhcp_opts: "[]".into(),
            binding_host: host.into(),
            binding_vnic_type: "normal".into(),
            binding_profile: r#"{"k":"v"}"#.into(),
            binding_vif_type: "ovs".into(),
            binding_vif_details: r#"{"port_filter":true}"#.into(),
            created_at: "2026-12-01T00:00:00Z".into(),
            updated_at: "2026-12-01T00:00:00Z".into(),
            revision_number: 3,
            fixed_ips: ips
                .iter()
                .map(|ip| FixedIp {
                    subnet_id: "s1".into(),
                    ip_address: (*ip).into(),
                })
                .collect(),
            ..Port::default()
        }
    }

    #[test]
    fn a_port_serialised_straight_is_its_api_dict() {
        for p in [
            port("a", &["10.0.0.2", "fd00::2"], "compute1"),
            port("b", &[], ""),
        ] {
            for admin in [true, false] {
                let mut straight = Vec::new();
                listing::write_json(&mut straight, &PortDict::of(&p, admin));
                let dict = serde_json::to_vec(&to_json(&p, admin)).unwrap();
                assert_eq!(String::from_utf8(straight), String::from_utf8(dict));
            }
        }
    }

    /// Every attribute built alone for `fields=` is the dict's, and only the dict's.
    #[test]
    fn fields_built_alone_are_the_dicts() {
        let p = port("a", &["10.0.0.2", "fd00::2"], "compute1");
        for admin in [true, false] {
            let dict = to_json(&p, admin);
            for (name, value) in &dict {
                assert_eq!(field(&p, admin, name).as_ref(), Some(value), "{name}");
            }
            for hidden in ADMIN_SHOWN.iter().chain(&["nonexistent", "fixed_ips:x"]) {
                assert_eq!(
                    field(&p, admin, hidden).is_some(),
                    dict.contains_key(*hidden)
                );
            }
            let mut out = Vec::new();
            let fields = [
                "name".to_string(),
                "binding:host_id".into(),
                "id".into(),
                "x".into(),
            ];
            write_port(&p, admin, &fields, &mut out);
            let query = ListQuery::parse(
                Some("fields=name&fields=binding:host_id&fields=id&fields=x"),
                &SPEC,
            )
            .unwrap();
            assert_eq!(
                serde_json::from_slice::<Value>(&out).unwrap(),
                Value::Object(query.project(dict.clone()))
            );
        }
    }

    /// Lookups survive the connection's own commits and are forgotten once another server
    /// sharing the SQLite file has committed.
    #[tokio::test]
    async fn lookups_last_until_another_connection_commits() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("shared.db").display());
        let ours = store::Store::connect(&url).await.unwrap();
        let theirs = store::Store::connect(&url).await.unwrap();
        let mut conn = ours.write.acquire().await.unwrap();
        let mut lookups = DraftLookups::default();
        assert!(
            kept_after(&ours, &mut conn, &mut lookups, None).await,
            "our own commit forgot the lookups"
        );
        assert!(
            !kept_after(&ours, &mut conn, &mut lookups, Some(&theirs)).await,
            "another server's commit left them"
        );
    }

    /// Reads something into `lookups` in a transaction of ours that commits a change, lets
    /// `others` commit one too, and says whether the next transaction still has it.
    async fn kept_after(
        ours: &store::Store,
        conn: &mut store::Conn,
        lookups: &mut DraftLookups,
        others: Option<&store::Store>,
    ) -> bool {
        let bump = "UPDATE feed_revision SET revision = revision + 1";
        let mut tx = ours.begin_write_on(conn).await.unwrap();
        lookups.revalidate(&mut tx, ours.backend).await.unwrap();
        lookups.default_groups.insert("p".into(), Some("sg".into()));
        sqlx::query(bump).execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
        if let Some(others) = others {
            let mut tx = others.begin_write().await.unwrap();
            sqlx::query(bump).execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
        }
        let mut tx = ours.begin_write_on(conn).await.unwrap();
        lookups.revalidate(&mut tx, ours.backend).await.unwrap();
        lookups.default_groups.contains_key("p")
    }
}

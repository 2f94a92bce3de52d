//! Port lifecycle: drafting a port from a create body (network, subnets and default security
//! group read once per batch through [`DraftLookups`]), writing it (MAC, security groups,
//! addresses, binding, the row and its feed entry), updating, reallocating, aligning and
//! removing ports, with their IPAM decisions.

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::error::{CoreResult, NeutronError, Status};
use crate::port_attributes as attrs;
use crate::security_groups as sg;
use crate::{RequestContext, Services, body, networks, port_binding, port_policy, subnets};
use neutrino_ipam as ipam;
use neutrino_store::ipam::Allocation;
use neutrino_store::networks::Network;
use neutrino_store::port_writes::{Finished, PortWrites};
use neutrino_store::ports::{FixedIp, Port};
use neutrino_store::subnets::Subnet;
use neutrino_store::{
    self as store, dhcp_hosting, ipam as ipam_store, ports as repo, security_groups,
};

/// Attributes only an admin may set (Neutron's policy defaults).
pub const ADMIN_ONLY: &[&str] = &["binding:host_id", "binding:profile"];

pub fn not_found(id: &str) -> NeutronError {
    NeutronError::not_found("PortNotFound", format!("Port {id} could not be found."))
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
    /// Written unbound, to be bound after the transaction commits
    /// ([`port_binding::bind_committed`]), instead of inside it.
    bind_after_commit: bool,
}

impl Draft {
    /// The port is bound after its transaction commits, not inside it.
    pub fn bind_after_commit(&mut self) {
        self.bind_after_commit = true;
    }

    /// The host the port will be bound to when written (the compute API drafts a server's
    /// ports before it has chosen the host).
    pub fn set_binding_host(&mut self, host: &str) {
        self.port.binding_host = host.to_string();
    }
}

/// Drafts a port with the lookups on the read pool (the compute API drafts a server's ports
/// before it takes the write lock).
pub async fn draft(
    state: &Services,
    ctx: &RequestContext,
    b: &Map<String, Value>,
    project_id: String,
) -> CoreResult<Draft> {
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
) -> CoreResult<Draft> {
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
    pub async fn prefetch(&mut self, conn: &mut store::Conn, ids: &[String]) -> CoreResult<()> {
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
    ) -> CoreResult<(Network, Vec<Subnet>)> {
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
    ) -> CoreResult<Option<String>> {
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
) -> CoreResult<Draft> {
    let network_id = body::string(b, "network_id", 255)?.unwrap_or_default();
    let (network, subnets) = lookups.network(conn, ctx, &network_id).await?;
    if !ctx.owns(&network.project_id) && !network.shared {
        return Err(NeutronError::forbidden("create_port"));
    }
    port_policy::check(ctx, &network, b, port_policy::Action::Create)?;
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
        bind_after_commit: false,
    })
}

/// Writes a drafted port: security groups, addresses, binding, the row (at once or held back
/// in `writes`, which the caller finishes before commit) and the change-feed entry for the
/// hosts concerned (written by that finish, which returns the revision to pass to
/// `state.feed` after commit). The foreign keys
/// catch a network or subnet deleted since the draft was made.
pub async fn write_draft(
    state: &Services,
    ctx: &RequestContext,
    b: &Map<String, Value>,
    d: Draft,
    tx: &mut store::Tx<'_>,
    writes: &mut PortWrites,
) -> CoreResult<Port> {
    let Draft {
        network,
        subnets,
        mut port,
        requested_ips,
        mac_given,
        default_group,
        bind_after_commit,
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
    port.security_groups = security_groups_for(
        state,
        tx,
        ctx,
        b.get("security_groups"),
        &port,
        default_group,
    )
    .await?;
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
    auto_addresses(
        state,
        tx,
        writes,
        &subnets,
        &port.clone(),
        &mut port.fixed_ips,
    )
    .await?;
    if bind_after_commit {
        port_binding::defer(&mut port);
    } else {
        port_binding::bind(state, &mut port, &network, tx).await?;
    }
    match writes.insert_port(tx, &port).await {
        Ok(true) => {
            // A port bound after the commit reaches its host's feed with its binding then.
            let hosts: &[&str] = if bind_after_commit {
                &[]
            } else {
                &[&port.binding_host]
            };
            writes.port_changed(tx, &port, hosts).await?;
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
    state: &Services,
    ctx: &RequestContext,
    b: &Map<String, Value>,
    d: Draft,
    tx: &mut store::Tx<'_>,
) -> CoreResult<(Port, Option<i64>)> {
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
        Status::SERVICE_UNAVAILABLE,
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
    state: &Services,
    tx: &mut store::Tx<'_>,
    ctx: &RequestContext,
    given: Option<&Value>,
    port: &Port,
    known_default: Option<String>,
) -> CoreResult<String> {
    let ids = match given {
        None => {
            if port.port_security_enabled && !port.device_owner.starts_with("network:") {
                let id = match known_default {
                    Some(id) => id,
                    None => security_groups::default_for(tx, &port.project_id).await?,
                };
                sg::lock_shared(state, tx, &id).await?;
                // Found before the lock: an admin may have deleted it since, and then it is
                // made again.
                if security_groups::get(&mut **tx, &id).await?.is_some() {
                    vec![id]
                } else {
                    vec![security_groups::default_for(tx, &port.project_id).await?]
                }
            } else {
                Vec::new()
            }
        }
        // Neutron's `convert_none_to_empty_list`: null is no group, not the default one.
        Some(Value::Null) => Vec::new(),
        Some(v) => {
            let ids = attrs::id_list(v, "security_groups")?;
            // A group being deleted is not given to a port meanwhile (see `sg::lock`).
            for id in &ids {
                sg::lock_shared(state, tx, id).await?;
            }
            let owner = (!ctx.is_admin()).then_some(port.project_id.as_str());
            let found = security_groups::usable(tx, &ids, owner).await?;
            let missing: Vec<&str> = ids
                .iter()
                .filter(|id| !found.iter().any(|(f, _)| f == *id))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(NeutronError::not_found(
                    "SecurityGroupNotFound",
                    format!("Security group {} does not exist", missing.join(", ")),
                ));
            }
            if found.iter().any(|(_, s)| *s) && found.iter().any(|(_, s)| !*s) {
                return Err(NeutronError::conflict(
                    "SecurityGroupConflict",
                    "Error Cannot apply both stateful and stateless security groups on the same port at the same time while attempting the operation.",
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
    state: &Services,
    tx: &mut store::Tx<'_>,
    writes: &mut PortWrites,
    network: &Network,
    subnets: &[Subnet],
    requested: Option<Vec<attrs::IpRequest>>,
    port: &Port,
    first_position: usize,
) -> CoreResult<Vec<FixedIp>> {
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

/// Neutron gives every port but a router's its EUI-64 address on each SLAAC and
/// DHCPv6-stateless subnet of its network, whatever `fixed_ips` names (other subnets only, or
/// nothing): those addresses follow from the MAC, and are not the caller's to leave out.
async fn auto_addresses(
    state: &Services,
    tx: &mut store::Tx<'_>,
    writes: &mut PortWrites,
    subnets: &[Subnet],
    port: &Port,
    fixed: &mut Vec<FixedIp>,
) -> CoreResult<()> {
    if port.device_owner.starts_with("network:router") {
        return Ok(());
    }
    let mac = ipam::normalize_mac(&port.mac_address)
        .map(|m| m.1)
        .unwrap_or_default();
    for s in subnets.iter().filter(|s| subnets::is_eui64(s)) {
        if fixed.iter().any(|f| f.subnet_id == s.id) {
            continue;
        }
        let ip = ipam::eui64(&subnets::cidr_of(s), mac);
        let position = fixed.len();
        fixed.push(claim(state, tx, writes, s, ip, port, position).await?);
    }
    Ok(())
}

async fn take_lowest(
    state: &Services,
    tx: &mut store::Tx<'_>,
    writes: &mut PortWrites,
    s: &Subnet,
) -> CoreResult<Option<u128>> {
    if !writes.lowest.holds(&s.id) {
        ipam_store::lock_subnet(tx, state.store.backend, &s.id).await?;
    }
    Ok(writes.lowest.take(tx, &s.id).await?)
}

/// Claims a specific address: out of the free ranges if it is in a pool, and recorded for the
/// port (409 when someone holds it).
async fn claim(
    state: &Services,
    tx: &mut store::Tx<'_>,
    writes: &mut PortWrites,
    s: &Subnet,
    ip: IpAddr,
    port: &Port,
    position: usize,
) -> CoreResult<FixedIp> {
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
) -> CoreResult<FixedIp> {
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
async fn release(state: &Services, tx: &mut store::Tx<'_>, fixed: &[FixedIp]) -> CoreResult<()> {
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
pub async fn visible(conn: &mut store::Conn, ctx: &RequestContext, id: &str) -> CoreResult<Port> {
    match repo::get(conn, id).await? {
        Some(p) if ctx.owns(&p.project_id) => Ok(p),
        _ => Err(not_found(id)),
    }
}

/// Updates a port from an update body (checked for known and read-only attributes): the
/// caller must see it and may write; admin-only attributes need an admin. Addresses,
/// security groups and the binding follow; its hosts are told after commit.
pub async fn update(
    state: &Services,
    ctx: &RequestContext,
    id: &str,
    b: &Map<String, Value>,
) -> CoreResult<Port> {
    let mut tx = state.store.begin_write().await?;
    let mut p = visible(&mut tx, ctx, id).await?;
    let (old_ips, old_pairs, old_groups) = (
        p.fixed_ips.clone(),
        p.allowed_address_pairs.clone(),
        p.security_groups.clone(),
    );
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
    port_policy::check(ctx, &network, b, port_policy::Action::Update)?;
    if let Some(name) = body::string(b, "name", 255)? {
        p.name = name;
    }
    if let Some(d) = body::string(b, "description", 255)? {
        p.description = d;
    }
    if let Some(d) = body::string_or_empty(b, "device_id", 255)? {
        p.device_id = d;
    }
    if let Some(d) = body::string_or_empty(b, "device_owner", 255)? {
        p.device_owner = d;
    }
    p.admin_state_up = body::boolean(b, "admin_state_up")?.unwrap_or(p.admin_state_up);
    p.port_security_enabled =
        body::boolean(b, "port_security_enabled")?.unwrap_or(p.port_security_enabled);
    if let Some(v) = b.get("mac_address") {
        p.mac_address = attrs::mac(v)?.0;
    }
    if let Some(dns) = attrs::dns_name(b)? {
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
            security_groups_for(state, &mut tx, ctx, b.get("security_groups"), &p, None).await?;
    } else if !p.port_security_enabled && p.security_groups != "[]" {
        return Err(NeutronError::conflict(
            "PortSecurityPortHasSecurityGroup",
            "Port has security group associated. Cannot disable port security or IP address until security group is removed.",
        ));
    }
    if let Some(requested) = attrs::fixed_ips(b)? {
        p.fixed_ips = reallocate(state, &mut tx, &network, &p, requested).await?;
        crate::floating_ips::check_fixed_ips_kept(&mut tx, &p).await?;
    }
    let rebind = ["binding:host_id", "binding:vnic_type", "binding:profile"]
        .iter()
        .any(|k| b.contains_key(*k));
    let old_host = p.binding_host.clone();
    if let Some(host) = body::string_or_empty(b, "binding:host_id", 255)? {
        p.binding_host = host;
    }
    if p.binding_host != old_host {
        // Wired on no host yet, as in Neutron: the new host's agent reports it up.
        p.status = "DOWN".into();
    }
    if let Some(vnic) = attrs::vnic_type(b)? {
        p.binding_vnic_type = vnic;
    }
    if let Some(profile) = attrs::profile(b)? {
        p.binding_profile = profile;
    }
    // The drivers run after the commit (a slow one holds no write transaction); a port that
    // loses its host is unbound here.
    let bind_after = rebind && !p.binding_host.is_empty();
    if bind_after {
        port_binding::defer(&mut p);
    } else if rebind {
        port_binding::bind(state, &mut p, &network, &mut tx).await?;
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
    // A port bound after the commit reaches its new host's feed with its binding then.
    let new_host = if bind_after {
        ""
    } else {
        p.binding_host.as_str()
    };
    // The only write that changes an existing port's groups (a binding never does): their
    // index follows it, and the hosts whose filters name its groups hear of the change.
    if p.security_groups != old_groups {
        store::port_groups::set(&mut tx, &p).await?;
    } else if p.fixed_ips != old_ips || p.allowed_address_pairs != old_pairs {
        let groups = store::port_groups::groups_of(&p).into_iter().collect();
        store::port_groups::members_changed(&mut tx, &groups).await?;
    }
    let revision =
        dhcp_hosting::record_port(&mut tx, &p.network_id, &p.id, &[&old_host, new_host]).await?;
    store::commit(tx).await?;
    state.feed.committed(revision);
    if bind_after && let Some(bound) = port_binding::bind_committed(state, &p.id).await? {
        p = bound;
    }
    Ok(p)
}

/// New addresses for an existing port: requested addresses it already holds are kept (a
/// subnet-only request keeps its address on that subnet), the rest are released, new ones
/// allocated.
async fn reallocate(
    state: &Services,
    tx: &mut store::Tx<'_>,
    network: &Network,
    port: &Port,
    requested: Vec<attrs::IpRequest>,
) -> CoreResult<Vec<FixedIp>> {
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
    auto_addresses(state, tx, &mut writes, &subnets, port, &mut all).await?;
    // Alone, nothing is held back but what was taken from the free ranges.
    writes.finish(tx).await?;
    Ok(all)
}

/// Deletes a port the caller sees and may write; its hosts are told after commit.
pub async fn delete(state: &Services, ctx: &RequestContext, id: &str) -> CoreResult<()> {
    let mut tx = state.store.begin_write().await?;
    let p = visible(&mut tx, ctx, id).await?;
    ctx.require_write("delete_port")?;
    crate::routers::check_port_deletable(&mut tx, &p).await?;
    // Its floating IPs survive, disassociated.
    let fips = crate::floating_ips::port_deleted(&mut tx, &p.id).await?;
    let revision = remove(state, &mut tx, &p).await?.max(fips);
    store::commit(tx).await?;
    state.feed.committed(revision);
    Ok(())
}

/// Deletes a port: its addresses given back, its row gone, its hosts told.
pub async fn remove(state: &Services, tx: &mut store::Tx<'_>, p: &Port) -> CoreResult<Option<i64>> {
    release(state, tx, &p.fixed_ips).await?;
    let revision = dhcp_hosting::record_port(tx, &p.network_id, &p.id, &[&p.binding_host]).await?;
    repo::delete(tx, &p.id).await?;
    Ok(revision)
}

/// Gives an existing port an address on each of `wanted` it has none on, and gives back its
/// addresses on subnets not in `wanted` (a DHCP port following its network's DHCP subnets).
/// Returns whether anything changed; the caller writes the row.
pub async fn align_addresses(
    state: &Services,
    tx: &mut store::Tx<'_>,
    network: &Network,
    port: &mut Port,
    wanted: &[Subnet],
) -> CoreResult<bool> {
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

#[cfg(test)]
mod tests {
    use super::*;

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

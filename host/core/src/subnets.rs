//! Subnet lifecycle: create (CIDR or subnet pool, IPv6 modes, gateway, pools, DNS servers,
//! host routes, overlap), update (the free ranges follow new pools) and delete (a pool's
//! prefix given back), with the network's DHCP following; the stored subnet's CIDR and pools
//! as IPAM reads them.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value, json};

use crate::error::{CoreResult, NeutronError};
use crate::{RequestContext, Services, body, dhcp_scheduling, networks, subnet_pools};
use neutrino_ipam::{self as ipam, PoolError, Range};
use neutrino_store::{self as store, ipam as ipam_store, subnets as repo, subnets::Subnet};

const MAX_DNS_NAMESERVERS: usize = 5;
const MAX_HOST_ROUTES: usize = 20;
const IPV6_MODES: &[&str] = &["slaac", "dhcpv6-stateful", "dhcpv6-stateless"];
/// Ports of this owner are deleted with their network or subnet instead of blocking it.
pub const AUTO_DELETE_OWNER: &str = "network:dhcp";

pub fn not_found(id: &str) -> NeutronError {
    NeutronError::not_found("SubnetNotFound", format!("Subnet {id} could not be found."))
}

/// The parsed CIDR of a stored subnet (always valid: it was checked on create).
pub fn cidr_of(s: &Subnet) -> IpNet {
    s.cidr
        .parse()
        .unwrap_or_else(|_| IpNet::V4(Default::default()))
}

/// The stored pools as address ranges.
pub fn pools_of(s: &Subnet) -> Vec<Range> {
    let pools: Vec<Value> = serde_json::from_str(&s.allocation_pools).unwrap_or_default();
    pools
        .iter()
        .filter_map(|p| {
            let start: IpAddr = p["start"].as_str()?.parse().ok()?;
            let end: IpAddr = p["end"].as_str()?.parse().ok()?;
            Some(Range {
                first: ipam::to_u128(start),
                last: ipam::to_u128(end),
            })
        })
        .collect()
}

fn pools_json(ranges: &[Range], version: u8) -> String {
    let items: Vec<Value> = ranges
        .iter()
        .map(|r| {
            json!({"start": ipam::from_u128(r.first, version).to_string(),
                   "end": ipam::from_u128(r.last, version).to_string()})
        })
        .collect();
    Value::Array(items).to_string()
}

fn required<'a>(b: &'a Map<String, Value>, key: &str) -> CoreResult<&'a Value> {
    b.get(key).ok_or_else(|| {
        NeutronError::bad_request(format!(
            "Failed to parse request. Required attribute '{key}' not specified"
        ))
    })
}

/// Creates a subnet from a create body (the caller checked its attributes and chose the
/// project) in `tx`, on a network the caller owns: its CIDR given, or allocated from a subnet
/// pool in `tx` (see `subnet_pools::allocate`); IPv6 modes, gateway, pools, DNS servers and
/// host routes checked, overlap and a second pool on the network refused. Answers whether its
/// network is external.
pub async fn create_one(
    state: &Services,
    ctx: &RequestContext,
    project_id: String,
    b: &Map<String, Value>,
    tx: &mut store::Tx<'_>,
) -> CoreResult<(Subnet, bool)> {
    let network_id = match required(b, "network_id")? {
        Value::String(s) => s.clone(),
        other => {
            return Err(NeutronError::bad_request(format!(
                "Invalid input for network_id. Reason: '{other}' is not a valid UUID."
            )));
        }
    };
    let version = match required(b, "ip_version")? {
        Value::Number(n) if matches!(n.as_i64(), Some(4 | 6)) => n.as_i64().unwrap_or(4) as u8,
        Value::String(s) if s == "4" || s == "6" => s.parse().unwrap_or(4),
        other => {
            return Err(NeutronError::bad_request(format!(
                "Invalid input for ip_version. Reason: {other} is not in [4, 6]."
            )));
        }
    };
    if b.get("segment_id").is_some_and(|v| !v.is_null()) {
        return Err(NeutronError::invalid_input(
            "segment_id is not supported by this server",
        ));
    }
    let pool_ref = subnet_pools::pool_ref(b)?;
    // A subnet with its CIDR is checked before anything is read, one from a pool once its
    // CIDR is allocated.
    let (cidr, wanted) = match &pool_ref {
        None => {
            let cidr_text = match b.get("cidr") {
                Some(Value::String(c)) => c.clone(),
                other => other.map(Value::to_string).unwrap_or_default(),
            };
            let net = ipam::parse_cidr(&cidr_text, version).map_err(NeutronError::invalid_input)?;
            let gateway = ipam::default_gateway(&net);
            (Some((net, shape(b, version, &net, gateway)?)), None)
        }
        Some(_) => (None, Some(subnet_pools::wanted(b, version)?)),
    };

    let network = networks::visible_in(tx, ctx, &network_id).await?;
    if !ctx.owns(&network.project_id) {
        return Err(NeutronError::forbidden("create_subnet"));
    }
    networks::check_mtu_fits(network.mtu, version)?;
    let pool = match &pool_ref {
        Some(r) => Some(subnet_pools::resolve(tx, ctx, r, version).await?),
        None => None,
    };
    let pool_id = pool.map(|p| p.id);

    // Overlap is checked under the network's lock, so two concurrent creates cannot both pass.
    store::lock_named(tx, state.store.backend, &format!("subnets/{network_id}")).await?;
    let siblings = repo::on_network(&mut **tx, &network_id).await?;
    // Neutron's `NetworkSubnetPoolAffinityError`: one pool (or none) per network and version.
    if siblings
        .iter()
        .any(|other| other.ip_version == i64::from(version) && other.subnetpool_id != pool_id)
    {
        return Err(NeutronError::bad(
            "NetworkSubnetPoolAffinityError",
            "Subnets hosted on the same network must be allocated from the same subnet pool.",
        ));
    }
    let (net, shaped) = match (cidr, &pool_id, &wanted) {
        (Some(given), _, _) => given,
        (None, Some(pool_id), Some(wanted)) => {
            let net = subnet_pools::allocate(state, tx, ctx, pool_id, wanted).await?;
            let gateway = subnet_pools::default_gateway(wanted, &net);
            (net, shape(b, version, &net, gateway)?)
        }
        _ => unreachable!("a subnet has a CIDR or a pool"),
    };
    if siblings
        .iter()
        .any(|other| ipam::overlaps(&cidr_of(other), &net))
    {
        return Err(NeutronError::invalid_input(format!(
            "Requested subnet with cidr: {net} for network: {network_id} overlaps with another subnet."
        )));
    }
    let Shape {
        ra_mode,
        address_mode,
        enable_dhcp,
        gateway,
        pools,
        dns,
        routes,
    } = shaped;
    let now = store::now();
    let s = Subnet {
        id: store::new_id(),
        project_id,
        network_id,
        name: body::string(b, "name", 255)?.unwrap_or_default(),
        description: body::string(b, "description", 255)?.unwrap_or_default(),
        ip_version: i64::from(version),
        cidr: net.to_string(),
        gateway_ip: gateway.map(|g| g.to_string()),
        enable_dhcp,
        ipv6_ra_mode: ra_mode,
        ipv6_address_mode: address_mode,
        allocation_pools: pools_json(&pools, version),
        dns_nameservers: Value::from(dns).to_string(),
        host_routes: Value::Array(routes).to_string(),
        subnetpool_id: pool_id,
        created_at: now.clone(),
        updated_at: now,
        revision_number: 0,
    };
    repo::insert(tx, &s).await?;
    ipam_store::add_ranges(tx, &s.id, &pools).await?;
    Ok((s, network.external))
}

/// What a create body says of a subnet once its CIDR is known.
struct Shape {
    ra_mode: Option<String>,
    address_mode: Option<String>,
    enable_dhcp: bool,
    gateway: Option<IpAddr>,
    pools: Vec<Range>,
    dns: Vec<String>,
    routes: Vec<Value>,
}

/// The IPv6 modes, DHCP, gateway (`default_gateway` when the body names none), pools, DNS
/// servers and host routes of a create body on `net`, checked.
fn shape(
    b: &Map<String, Value>,
    version: u8,
    net: &IpNet,
    default_gateway: Option<IpAddr>,
) -> CoreResult<Shape> {
    let (ra_mode, address_mode) = ipv6_modes(b, version, net)?;
    let enable_dhcp = body::boolean(b, "enable_dhcp")?.unwrap_or(true);
    if enable_dhcp {
        dhcp_capable(net)?;
    }
    let gateway = match b.get("gateway_ip") {
        None => default_gateway,
        Some(Value::Null) => None,
        Some(_) => {
            let g = ip_attribute(b, "gateway_ip")?;
            if !ipam::gateway_valid(net, g) {
                return Err(NeutronError::invalid_input(
                    "Gateway is not valid on subnet",
                ));
            }
            Some(g)
        }
    };
    let pools = match b.get("allocation_pools") {
        None | Some(Value::Null) => ipam::default_pools(net, gateway),
        Some(v) => checked_pools(net, v, gateway)?,
    };
    Ok(Shape {
        ra_mode,
        address_mode,
        enable_dhcp,
        gateway,
        pools,
        dns: nameservers(b, version)?.unwrap_or_default(),
        routes: host_routes(b, version)?.unwrap_or_default(),
    })
}

/// Neutron's checks of a subnet that gets DHCP: no multicast and no loopback range (dnsmasq
/// could not serve it; a loopback "subnet" would also take over 127.0.0.1 in the namespace).
fn dhcp_capable(net: &IpNet) -> CoreResult<()> {
    let addr = net.network();
    if addr.is_multicast() {
        return Err(NeutronError::invalid_input(
            "Multicast IP subnet is not supported if enable_dhcp is True",
        ));
    }
    if addr.is_loopback() {
        return Err(NeutronError::invalid_input(
            "Loopback IP subnet is not supported if enable_dhcp is True",
        ));
    }
    Ok(())
}

fn ipv6_modes(
    b: &Map<String, Value>,
    version: u8,
    net: &IpNet,
) -> CoreResult<(Option<String>, Option<String>)> {
    let mode = |key: &str| -> CoreResult<Option<String>> {
        match b.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(m)) if IPV6_MODES.contains(&m.as_str()) => Ok(Some(m.clone())),
            Some(other) => Err(NeutronError::bad_request(format!(
                "Invalid input for {key}. Reason: {other} is not in {IPV6_MODES:?}."
            ))),
        }
    };
    let (ra, address) = (mode("ipv6_ra_mode")?, mode("ipv6_address_mode")?);
    if version == 4 && (ra.is_some() || address.is_some()) {
        return Err(NeutronError::invalid_input(
            "ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False or ip_version is 4",
        ));
    }
    if let (Some(r), Some(a)) = (&ra, &address)
        && r != a
    {
        return Err(NeutronError::invalid_input(format!(
            "ipv6_ra_mode set to '{r}' with ipv6_address_mode set to '{a}' is not valid. If both attributes are set, they must be the same value"
        )));
    }
    let eui64 = matches!(
        address.as_deref().or(ra.as_deref()),
        Some("slaac" | "dhcpv6-stateless")
    );
    if eui64 && net.prefix_len() != 64 {
        return Err(NeutronError::invalid_input(format!(
            "Invalid CIDR {net} for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64"
        )));
    }
    Ok((ra, address))
}

/// Whether addresses on this subnet come from the MAC (SLAAC / DHCPv6-stateless) rather than
/// from the pools.
pub fn is_eui64(s: &Subnet) -> bool {
    s.ip_version == 6
        && matches!(
            s.ipv6_address_mode.as_deref(),
            Some("slaac" | "dhcpv6-stateless")
        )
}

fn ip_attribute(b: &Map<String, Value>, key: &str) -> CoreResult<IpAddr> {
    let v = &b[key];
    v.as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid_ip(key, v))
}

fn invalid_ip(key: &str, v: &Value) -> NeutronError {
    NeutronError::bad_request(format!(
        "Invalid input for {key}. Reason: '{}' is not a valid IP address.",
        shown(v)
    ))
}

fn checked_pools(net: &IpNet, v: &Value, gateway: Option<IpAddr>) -> CoreResult<Vec<Range>> {
    let bad = |why: String| {
        NeutronError::bad_request(format!("Invalid input for allocation_pools. Reason: {why}"))
    };
    let Value::Array(items) = v else {
        return Err(bad(format!("'{v}' is not a list")));
    };
    let mut pools = Vec::with_capacity(items.len());
    for item in items {
        if let Some(key) = item
            .as_object()
            .and_then(|m| m.keys().find(|k| *k != "start" && *k != "end"))
        {
            return Err(bad(format!("Unrecognized attribute(s) '{key}'")));
        }
        let ends = ["start", "end"].map(|k| item.get(k).and_then(Value::as_str));
        let [Some(start), Some(end)] = ends else {
            return Err(bad(format!(
                "'{item}' is not a valid allocation pool: it needs 'start' and 'end'"
            )));
        };
        let parse = |s: &str| {
            s.parse::<IpAddr>()
                .map_err(|_| bad(format!("'{s}' is not a valid IP address.")))
        };
        pools.push((parse(start)?, parse(end)?));
    }
    ipam::check_pools(net, &pools, gateway).map_err(|e| match e {
        PoolError::Invalid(m) => NeutronError::bad("InvalidAllocationPool", m),
        PoolError::OutOfBounds(m) => NeutronError::bad("OutOfBoundsAllocationPool", m),
        PoolError::Overlap(m) => NeutronError::conflict("OverlappingAllocationPools", m),
        PoolError::Gateway(m) => NeutronError::conflict("GatewayConflictWithAllocationPools", m),
    })
}

fn nameservers(b: &Map<String, Value>, version: u8) -> CoreResult<Option<Vec<String>>> {
    let Some(items) = body::list(b.get("dns_nameservers"), "dns_nameservers")? else {
        return Ok(None);
    };
    let bad = |why: String| {
        NeutronError::bad_request(format!("Invalid input for dns_nameservers. Reason: {why}"))
    };
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let ip = item
            .as_str()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .filter(|ip| ipam::version_of(*ip) == version)
            .ok_or_else(|| bad(format!("'{}' is not a valid nameserver.", shown(item))))?;
        let text = ip.to_string();
        if out.contains(&text) {
            return Err(bad(format!("Duplicate nameserver '{text}'.")));
        }
        out.push(text);
    }
    if out.len() > MAX_DNS_NAMESERVERS {
        return Err(NeutronError::bad(
            "DNSNameServersExhausted",
            format!(
                "Unable to complete operation for subnet. The number of DNS nameservers exceeds the limit {MAX_DNS_NAMESERVERS}."
            ),
        ));
    }
    Ok(Some(out))
}

fn shown(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or(v.to_string())
}

fn host_routes(b: &Map<String, Value>, version: u8) -> CoreResult<Option<Vec<Value>>> {
    let Some(items) = body::list(b.get("host_routes"), "host_routes")? else {
        return Ok(None);
    };
    let bad = |why: String| {
        NeutronError::bad_request(format!("Invalid input for host_routes. Reason: {why}"))
    };
    let mut out: Vec<Value> = Vec::new();
    for item in items {
        let destination = item
            .get("destination")
            .and_then(Value::as_str)
            .and_then(|d| ipam::parse_cidr(d, version).ok().or_else(|| d.parse().ok()));
        let nexthop = item
            .get("nexthop")
            .and_then(Value::as_str)
            .and_then(|n| n.parse::<IpAddr>().ok())
            .filter(|ip| ipam::version_of(*ip) == version);
        let (Some(destination), Some(nexthop)) = (destination, nexthop) else {
            return Err(bad(format!(
                "{item} is not a valid host route: it needs a 'destination' CIDR and a 'nexthop' address of the subnet's IP version"
            )));
        };
        let route =
            json!({"destination": destination.trunc().to_string(), "nexthop": nexthop.to_string()});
        if out.contains(&route) {
            return Err(bad(format!("Duplicate hostroute '{route}'.")));
        }
        out.push(route);
    }
    if out.len() > MAX_HOST_ROUTES {
        return Err(NeutronError::bad(
            "HostRoutesExhausted",
            format!(
                "Unable to complete operation for subnet. The number of host routes exceeds the limit {MAX_HOST_ROUTES}."
            ),
        ));
    }
    Ok(Some(out))
}

/// Callers see their own subnets and those on shared or external networks.
pub async fn visible(
    conn: &mut store::Conn,
    ctx: &RequestContext,
    id: &str,
) -> CoreResult<(Subnet, neutrino_store::networks::Network)> {
    let subnet = repo::get(&mut *conn, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let network = neutrino_store::networks::get(&mut *conn, &subnet.network_id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if ctx.owns(&subnet.project_id) || network.shared || network.external {
        Ok((subnet, network))
    } else {
        Err(not_found(id))
    }
}

/// Updates a subnet from an update body (checked for known and read-only attributes) that
/// the caller owns and may write: DNS servers, host routes, gateway and pools (the free
/// ranges follow), and the network's DHCP. Answers it and whether its network is external.
pub async fn update(
    state: &Services,
    ctx: &RequestContext,
    id: &str,
    b: &Map<String, Value>,
) -> CoreResult<(Subnet, bool)> {
    let mut tx = state.store.begin_write().await?;
    let (mut s, network) = visible(&mut tx, ctx, id).await?;
    if !ctx.owns(&s.project_id) {
        return Err(NeutronError::forbidden("update_subnet"));
    }
    ctx.require_write("update_subnet")?;
    let net = cidr_of(&s);
    let version = s.ip_version as u8;
    if let Some(name) = body::string(b, "name", 255)? {
        s.name = name;
    }
    if let Some(d) = body::string(b, "description", 255)? {
        s.description = d;
    }
    let enable_dhcp = body::boolean(b, "enable_dhcp")?.unwrap_or(s.enable_dhcp);
    if enable_dhcp && !s.enable_dhcp {
        dhcp_capable(&cidr_of(&s))?;
    }
    s.enable_dhcp = enable_dhcp;
    if let Some(dns) = nameservers(b, version)? {
        s.dns_nameservers = Value::from(dns).to_string();
    }
    if let Some(routes) = host_routes(b, version)? {
        s.host_routes = Value::Array(routes).to_string();
    }
    let mut gateway = s.gateway_ip.as_deref().and_then(|g| g.parse().ok());
    match b.get("gateway_ip") {
        None => {}
        Some(Value::Null) => gateway = None,
        Some(_) => {
            let g = ip_attribute(b, "gateway_ip")?;
            if !ipam::gateway_valid(&net, g) {
                return Err(NeutronError::invalid_input(
                    "Gateway is not valid on subnet",
                ));
            }
            gateway = Some(g);
        }
    }
    let pools = match b.get("allocation_pools") {
        Some(v) if !v.is_null() => checked_pools(&net, v, gateway)?,
        _ => {
            let pools = pools_of(&s);
            let g = gateway.map(ipam::to_u128);
            if let Some(g) = g
                && pools.iter().any(|r| (r.first..=r.last).contains(&g))
            {
                return Err(NeutronError::conflict(
                    "GatewayConflictWithAllocationPools",
                    format!(
                        "Gateway ip {} conflicts with allocation pool",
                        gateway.map(|g| g.to_string()).unwrap_or_default()
                    ),
                ));
            }
            pools
        }
    };
    if b.contains_key("allocation_pools") {
        // The free ranges are the new pools minus what ports hold.
        ipam_store::lock_subnet(&mut tx, state.store.backend, &s.id).await?;
        let held = ipam_store::allocated_on(&mut tx, &s.id).await?;
        ipam_store::clear_ranges(&mut tx, &s.id).await?;
        ipam_store::add_ranges(&mut tx, &s.id, &ipam::subtract(&pools, &held)).await?;
        s.allocation_pools = pools_json(&pools, version);
    }
    s.gateway_ip = gateway.map(|g| g.to_string());
    s.updated_at = store::now();
    s.revision_number += 1;
    repo::update(&mut tx, &s).await?;
    let revision = dhcp_scheduling::subnets_changed(state, &mut tx, &s.network_id).await?;
    store::commit(tx).await?;
    state.feed.committed(revision);
    dhcp_scheduling::bind_committed(state, std::slice::from_ref(&s.network_id)).await;
    Ok((s, network.external))
}

/// Deletes a subnet the caller owns and may write, unless a port other than its DHCP port
/// holds an address on it; the network's DHCP follows.
pub async fn delete(state: &Services, ctx: &RequestContext, id: &str) -> CoreResult<()> {
    crate::retry::retrying("subnet delete", || delete_once(state, ctx, id)).await
}

async fn delete_once(state: &Services, ctx: &RequestContext, id: &str) -> CoreResult<()> {
    let mut tx = state.store.begin_write().await?;
    let (s, _) = visible(&mut tx, ctx, id).await?;
    if !ctx.owns(&s.project_id) {
        return Err(NeutronError::forbidden("delete_subnet"));
    }
    ctx.require_write("delete_subnet")?;
    ipam_store::lock_subnet(&mut tx, state.store.backend, &s.id).await?;
    // An auto-address subnet's addresses go with it, as in Neutron (only a router's port
    // keeps it); any other subnet in use by a port but its DHCP port stays.
    let in_use = if is_eui64(&s) {
        repo::used_by_routers(&mut tx, &s.id).await?
    } else {
        repo::in_use(&mut tx, &s.id, AUTO_DELETE_OWNER).await?
    };
    let holders = repo::holders(&mut tx, &s.id).await?;
    if in_use {
        return Err(NeutronError::conflict(
            "SubnetInUse",
            format!(
                "Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet."
            ),
        ));
    }
    repo::delete(&mut tx, &s.id).await?;
    // Its prefix is free again in its pool.
    if let Some(pool) = &s.subnetpool_id {
        subnet_pools::release(state, &mut tx, pool, &cidr_of(&s)).await?;
    }
    let mut revision = dhcp_scheduling::subnets_changed(state, &mut tx, &s.network_id).await?;
    // Ports that lost an address there: news for their hosts, and for their groups' members
    // (each group's hosts looked up once, however many of its ports lost an address).
    let mut groups = std::collections::BTreeSet::new();
    for (port, network, host) in &holders {
        let p = store::dhcp_hosting::record_port(&mut tx, network, port, &[host]).await?;
        revision = revision.max(p);
        if let Some(port) = store::ports::get(&mut tx, port).await? {
            groups.extend(store::port_groups::groups_of(&port));
        }
    }
    store::port_groups::members_changed(&mut tx, &groups).await?;
    store::commit(tx).await?;
    state.feed.committed(revision);
    dhcp_scheduling::bind_committed(state, std::slice::from_ref(&s.network_id)).await;
    Ok(())
}

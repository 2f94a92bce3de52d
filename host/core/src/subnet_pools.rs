//! Subnet pools as Neutron's API keeps them (`subnet_allocation`, `default-subnetpools`):
//! create, update (prefixes only grow), delete (only unused), who sees them (their project,
//! and everyone for shared ones), and the allocation of a subnet's CIDR from one, inside the
//! subnet's create transaction under the pool's lock (Neutron's `SubnetAllocator`).

use ipnet::IpNet;
use serde_json::{Map, Value};

use crate::error::{CoreResult, NeutronError, Status};
use crate::quotas::Ledger;
use crate::{RequestContext, Services, body};
use neutrino_ipam::prefixes::{self, Block};
use neutrino_ipam::{self as ipam, Range};
use neutrino_store::subnet_pools::{self as repo, SubnetPool};
use neutrino_store::{self as store};

pub fn not_found(id: &str) -> NeutronError {
    NeutronError::not_found(
        "SubnetPoolNotFound",
        format!("Subnet pool {id} could not be found."),
    )
}

fn bad_subnets_request(why: &str) -> NeutronError {
    NeutronError::bad("BadRequest", format!("Bad subnets request: {why}."))
}

fn default_exists() -> NeutronError {
    NeutronError::invalid_input(
        "A default subnetpool for this IP family has already been set. Only one default may exist per IP family.",
    )
}

/// Neutron's `SubnetAllocationError`: not one of its fault classes, so a 500, but with its type
/// and message in the body.
fn allocation_error(reason: &str) -> NeutronError {
    NeutronError::new(
        Status::INTERNAL_SERVER_ERROR,
        "SubnetAllocationError",
        format!("Failed to allocate subnet: {reason}."),
    )
}

fn bounds_error(kind: &str, len: i64, base_kind: &str, base: i64) -> NeutronError {
    NeutronError::bad(
        "IllegalSubnetPoolPrefixBounds",
        format!("Illegal prefix bounds: {kind}={len}, {base_kind}={base}."),
    )
}

/// A pool's prefixes as stored.
pub fn prefixes_of(p: &SubnetPool) -> Vec<IpNet> {
    serde_json::from_str::<Vec<String>>(&p.prefixes)
        .unwrap_or_default()
        .iter()
        .filter_map(|t| t.parse().ok())
        .collect()
}

fn version_of(p: &SubnetPool) -> u8 {
    if p.ip_version == 6 { 6 } else { 4 }
}

/// A pool the caller may see: its project's, a shared one, any for an admin.
pub async fn visible(
    conn: &mut store::Conn,
    ctx: &RequestContext,
    id: &str,
) -> CoreResult<SubnetPool> {
    match repo::get(&mut *conn, id).await? {
        Some(p) if ctx.owns(&p.project_id) || p.shared => Ok(p),
        _ => Err(not_found(id)),
    }
}

/// The CIDRs of `prefixes` (neutron-lib's `type:subnet_list`): None when absent; each a CIDR
/// (host bits dropped, as Neutron's `IPSet` does).
fn prefix_list(b: &Map<String, Value>) -> CoreResult<Option<Vec<IpNet>>> {
    let Some(items) = body::list(b.get("prefixes"), "prefixes")? else {
        return Ok(None);
    };
    let bad = |why: String| {
        NeutronError::bad_request(format!("Invalid input for prefixes. Reason: {why}"))
    };
    items
        .iter()
        .map(|item| {
            let text = item
                .as_str()
                .ok_or_else(|| bad(format!("'{item}' is not a valid IP subnet.")))?;
            if !text.contains('/') {
                return Err(bad(format!(
                    "'{text}' isn't a recognized IP subnet cidr, '{text}/{}' is recommended",
                    if text.contains(':') { 128 } else { 32 }
                )));
            }
            text.parse::<IpNet>()
                .map(|n| n.trunc())
                .map_err(|_| bad(format!("'{text}' is not a valid IP subnet.")))
        })
        .collect::<CoreResult<Vec<_>>>()
        .map(Some)
}

/// The IP version of a pool's prefixes (`EmptySubnetPoolPrefixList`, `PrefixVersionMismatch`).
fn version_of_prefixes(prefixes: &[IpNet]) -> CoreResult<u8> {
    let Some(first) = prefixes.first() else {
        return Err(NeutronError::bad(
            "EmptySubnetPoolPrefixList",
            "Empty subnet pool prefix list.",
        ));
    };
    let version = ipam::version_of(first.addr());
    if prefixes
        .iter()
        .any(|p| ipam::version_of(p.addr()) != version)
    {
        return Err(NeutronError::bad(
            "PrefixVersionMismatch",
            "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.",
        ));
    }
    Ok(version)
}

/// The fewest blocks covering the prefixes (Neutron stores them compacted).
fn compacted(prefixes: &[IpNet], version: u8) -> Vec<Block> {
    let ranges: Vec<Range> = prefixes.iter().map(ipam::bounds).collect();
    prefixes::blocks_of(&ranges, version)
}

fn prefixes_json(blocks: &[Block], version: u8) -> String {
    let texts: Vec<String> = blocks.iter().map(|b| b.net(version).to_string()).collect();
    Value::from(texts).to_string()
}

/// A non-negative integer attribute (`type:non_negative`, `convert_to_int`).
fn non_negative(b: &Map<String, Value>, key: &str) -> CoreResult<Option<i64>> {
    match body::integer(b, key)? {
        Some(n) if n < 0 => Err(NeutronError::bad_request(format!(
            "Invalid input for {key}. Reason: '{n}' should be non-negative."
        ))),
        n => Ok(n),
    }
}

/// Neutron's `SubnetPoolReader` bounds: max within the version's bits, min not above max,
/// default between them.
fn check_bounds(p: &SubnetPool) -> CoreResult<()> {
    let bits = i64::from(prefixes::bits(version_of(p)));
    let (min, default, max) = (p.min_prefixlen, p.default_prefixlen, p.max_prefixlen);
    if max > bits {
        return Err(bounds_error("max_prefixlen", max, "ip_version_max", bits));
    }
    if min > max {
        return Err(bounds_error("min_prefixlen", min, "max_prefixlen", max));
    }
    if default < min {
        return Err(bounds_error(
            "default_prefixlen",
            default,
            "min_prefixlen",
            min,
        ));
    }
    if default > max {
        return Err(bounds_error(
            "default_prefixlen",
            default,
            "max_prefixlen",
            max,
        ));
    }
    Ok(())
}

/// Address scopes are not served: none exists, so only `null` may be given.
fn check_address_scope(b: &Map<String, Value>) -> CoreResult<()> {
    match b.get("address_scope_id") {
        None | Some(Value::Null) => Ok(()),
        Some(v) => Err(NeutronError::not_found(
            "AddressScopeNotFound",
            format!(
                "Address scope {} could not be found.",
                v.as_str().map_or_else(|| v.to_string(), str::to_string)
            ),
        )),
    }
}

/// `name`: required on create, a non-blank string (`type:not_empty_string`).
fn name(b: &Map<String, Value>) -> CoreResult<Option<String>> {
    let name = body::string(b, "name", 255)?;
    if let Some(n) = &name
        && n.trim().is_empty()
    {
        return Err(NeutronError::bad_request(format!(
            "Invalid input for name. Reason: '{n}' Blank strings are not permitted."
        )));
    }
    Ok(name)
}

fn required(key: &str) -> NeutronError {
    NeutronError::bad_request(format!(
        "Failed to parse request. Required attribute '{key}' not specified"
    ))
}

/// A pool from a create body (checked for attributes; policy on `shared`/`is_default` below).
fn pool_of_body(
    ctx: &RequestContext,
    project_id: &str,
    b: &Map<String, Value>,
) -> CoreResult<(SubnetPool, Vec<Block>)> {
    let name = name(b)?.ok_or_else(|| required("name"))?;
    let prefixes = prefix_list(b)?.ok_or_else(|| required("prefixes"))?;
    let version = version_of_prefixes(&prefixes)?;
    // Neutron's policy looks at an attribute only when it differs from its default.
    let shared = body::boolean(b, "shared")?.unwrap_or(false);
    let is_default = body::boolean(b, "is_default")?.unwrap_or(false);
    for (attribute, set) in [("shared", shared), ("is_default", is_default)] {
        if set && !ctx.is_admin() {
            return Err(NeutronError::forbidden(&format!(
                "create_subnetpool:{attribute}"
            )));
        }
    }
    let blocks = compacted(&prefixes, version);
    let bits = i64::from(prefixes::bits(version));
    let min = non_negative(b, "min_prefixlen")?.unwrap_or(if version == 4 { 8 } else { 64 });
    let max = non_negative(b, "max_prefixlen")?.unwrap_or(bits);
    let now = store::now();
    let pool = SubnetPool {
        id: store::new_id(),
        project_id: project_id.to_string(),
        name,
        description: body::string(b, "description", 255)?.unwrap_or_default(),
        ip_version: i64::from(version),
        prefixes: prefixes_json(&blocks, version),
        default_prefixlen: non_negative(b, "default_prefixlen")?.unwrap_or(min),
        min_prefixlen: min,
        max_prefixlen: max,
        default_quota: non_negative(b, "default_quota")?,
        shared,
        is_default,
        created_at: now.clone(),
        updated_at: now,
        revision_number: 0,
    };
    check_bounds(&pool)?;
    check_address_scope(b)?;
    Ok((pool, blocks))
}

/// Creates pools from create bodies (checked for attributes; `projects[i]` is the project of
/// `bodies[i]`), all or none, their `subnetpool` quota checked first.
pub async fn create(
    state: &Services,
    ctx: &RequestContext,
    bodies: &[Map<String, Value>],
    projects: &[String],
) -> CoreResult<Vec<SubnetPool>> {
    let pools = bodies
        .iter()
        .zip(projects)
        .map(|(b, project)| pool_of_body(ctx, project, b))
        .collect::<CoreResult<Vec<_>>>()?;
    let mut tx = state.store.begin_write().await?;
    let mut deltas: Vec<(String, i64)> = Vec::new();
    for project in projects {
        match deltas.iter_mut().find(|(p, _)| p == project) {
            Some((_, n)) => *n += 1,
            None => deltas.push((project.clone(), 1)),
        }
    }
    Ledger::check(&mut tx, state.store.backend, "subnetpool", &deltas).await?;
    let mut created = Vec::with_capacity(pools.len());
    for (pool, blocks) in pools {
        if pool.is_default && repo::default_of(&mut *tx, pool.ip_version).await?.is_some() {
            return Err(default_exists());
        }
        insert_checked(&mut tx, &pool).await?;
        repo::add_space(&mut tx, &pool.id, version_of(&pool), &blocks).await?;
        created.push(pool);
    }
    store::commit(tx).await?;
    Ok(created)
}

/// Inserts a pool; a concurrent default of the same version (the unique index) is Neutron's
/// answer to a second default.
async fn insert_checked(tx: &mut store::Tx<'_>, pool: &SubnetPool) -> CoreResult<()> {
    match repo::insert(tx, pool).await {
        Err(e) if e.is_unique_violation() && pool.is_default => Err(default_exists()),
        other => Ok(other?),
    }
}

/// Updates a pool the caller owns and may write: name, description, bounds, quota, default
/// (admins only), and prefixes, which may only grow (the added space becomes free).
pub async fn update(
    state: &Services,
    ctx: &RequestContext,
    id: &str,
    b: &Map<String, Value>,
) -> CoreResult<SubnetPool> {
    let mut tx = state.store.begin_write().await?;
    let seen = visible(&mut tx, ctx, id).await?;
    if !ctx.owns(&seen.project_id) {
        return Err(NeutronError::forbidden("update_subnetpool"));
    }
    ctx.require_write("update_subnetpool")?;
    if b.contains_key("is_default") && !ctx.is_admin() {
        return Err(NeutronError::forbidden("update_subnetpool:is_default"));
    }
    repo::lock(&mut tx, state.store.backend, id).await?;
    // Read again under the lock: a change committed meanwhile is not written over.
    let mut p = visible(&mut tx, ctx, id).await?;
    let version = version_of(&p);
    if let Some(n) = name(b)? {
        p.name = n;
    }
    if let Some(d) = body::string(b, "description", 255)? {
        p.description = d;
    }
    for (key, field) in [
        ("min_prefixlen", &mut p.min_prefixlen),
        ("max_prefixlen", &mut p.max_prefixlen),
        ("default_prefixlen", &mut p.default_prefixlen),
    ] {
        if let Some(n) = non_negative(b, key)? {
            *field = n;
        }
    }
    if b.contains_key("default_quota") {
        p.default_quota = non_negative(b, "default_quota")?;
    }
    check_address_scope(b)?;
    let mut added = Vec::new();
    if let Some(wanted) = prefix_list(b)? {
        let current = compacted(&prefixes_of(&p), version);
        let wanted_blocks = if wanted.is_empty() {
            Vec::new()
        } else {
            let wanted_version = version_of_prefixes(&wanted)?;
            if wanted_version != version {
                return Err(NeutronError::bad(
                    "PrefixVersionMismatch",
                    "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.",
                ));
            }
            compacted(&wanted, version)
        };
        if !prefixes::difference(&current, &wanted_blocks, version).is_empty() {
            return Err(NeutronError::bad(
                "IllegalSubnetPoolPrefixUpdate",
                "Illegal update to prefixes: Existing prefixes must be a subset of the new prefixes.",
            ));
        }
        added = prefixes::difference(&wanted_blocks, &current, version);
        p.prefixes = prefixes_json(&compacted(&wanted, version), version);
    }
    check_bounds(&p)?;
    if let Some(is_default) = body::boolean(b, "is_default")? {
        if is_default && !p.is_default && repo::default_of(&mut *tx, p.ip_version).await?.is_some()
        {
            return Err(default_exists());
        }
        p.is_default = is_default;
    }
    repo::add_space(&mut tx, &p.id, version, &added).await?;
    p.updated_at = store::now();
    p.revision_number += 1;
    match repo::update(&mut tx, &p).await {
        Err(e) if e.is_unique_violation() => return Err(default_exists()),
        other => other?,
    }
    store::commit(tx).await?;
    Ok(p)
}

/// Deletes a pool the caller owns and may write, unless a subnet was allocated from it.
pub async fn delete(state: &Services, ctx: &RequestContext, id: &str) -> CoreResult<()> {
    let mut tx = state.store.begin_write().await?;
    let p = visible(&mut tx, ctx, id).await?;
    if !ctx.owns(&p.project_id) {
        return Err(NeutronError::forbidden("delete_subnetpool"));
    }
    ctx.require_write("delete_subnetpool")?;
    repo::lock(&mut tx, state.store.backend, id).await?;
    if repo::in_use(&mut *tx, id).await? {
        return Err(NeutronError::bad(
            "SubnetPoolDeleteError",
            "Unable to delete subnet pool: Subnet pool has existing allocations.",
        ));
    }
    if !repo::delete(&mut tx, id).await? {
        return Err(not_found(id));
    }
    store::commit(tx).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Subnets from pools

/// Which pool a subnet create names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolRef {
    Id(String),
    /// `use_default_subnetpool`: the default pool of the subnet's IP version.
    Default,
}

/// What a subnet create asks of its pool (Neutron's `SubnetRequestFactory`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// Any free block of this length (None: the pool's `default_prefixlen`).
    Any(Option<u8>),
    /// The block holding this gateway, of this length (None: the pool's default).
    AroundGateway(std::net::IpAddr, Option<u8>),
    /// Exactly this CIDR.
    Specific(IpNet),
}

/// The pool a subnet create body names, if any (Neutron's `_get_subnetpool_id`), with the
/// request's own checks: `cidr` and `prefixlen` not together, not both a pool and the default
/// pool, a pool or a CIDR.
pub fn pool_ref(b: &Map<String, Value>) -> CoreResult<Option<PoolRef>> {
    let has_cidr = b.get("cidr").is_some_and(|v| !v.is_null());
    let has_prefixlen = b.get("prefixlen").is_some_and(|v| !v.is_null());
    if has_cidr && has_prefixlen {
        return Err(bad_subnets_request(
            "cidr and prefixlen must not be supplied together",
        ));
    }
    let use_default = body::boolean(b, "use_default_subnetpool")?.unwrap_or(false);
    let id = match b.get("subnetpool_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(NeutronError::bad_request(format!(
                "Invalid input for subnetpool_id. Reason: '{other}' is not a valid UUID."
            )));
        }
    };
    let found = match (id, use_default) {
        (Some(_), true) => {
            return Err(bad_subnets_request(
                "subnetpool_id and use_default_subnetpool cannot both be specified",
            ));
        }
        (Some(id), false) => Some(PoolRef::Id(id)),
        (None, true) => Some(PoolRef::Default),
        (None, false) => None,
    };
    if found.is_none() && !has_cidr {
        return Err(bad_subnets_request(
            "a subnetpool must be specified in the absence of a cidr",
        ));
    }
    Ok(found)
}

/// What a subnet create body with a pool asks of it; `cidr` parsed as for any subnet.
pub fn wanted(b: &Map<String, Value>, version: u8) -> CoreResult<Wanted> {
    // Past any address's bits: refused by the pool's maximum.
    let prefixlen = non_negative(b, "prefixlen")?.map(|n| u8::try_from(n).unwrap_or(u8::MAX));
    if let Some(cidr) = b.get("cidr").filter(|v| !v.is_null()) {
        let text = cidr
            .as_str()
            .map_or_else(|| cidr.to_string(), str::to_string);
        let net = ipam::parse_cidr(&text, version).map_err(NeutronError::invalid_input)?;
        return Ok(Wanted::Specific(net));
    }
    if let Some(Value::String(gateway)) = b.get("gateway_ip") {
        let ip = gateway.parse().map_err(|_| {
            NeutronError::bad_request(format!(
                "Invalid input for gateway_ip. Reason: '{gateway}' is not a valid IP address."
            ))
        })?;
        return Ok(Wanted::AroundGateway(ip, prefixlen));
    }
    if b.get("allocation_pools").is_some_and(|v| !v.is_null()) {
        return Err(bad_subnets_request(
            "allocation_pools allowed only for specific subnet requests.",
        ));
    }
    Ok(Wanted::Any(prefixlen))
}

/// The pool a subnet create names, as the caller may see it (404 otherwise), of the subnet's
/// IP version.
pub async fn resolve(
    conn: &mut store::Conn,
    ctx: &RequestContext,
    pool: &PoolRef,
    version: u8,
) -> CoreResult<SubnetPool> {
    let p = match pool {
        PoolRef::Id(id) => visible(conn, ctx, id).await?,
        PoolRef::Default => match repo::default_of(&mut *conn, i64::from(version)).await? {
            Some(p) if ctx.owns(&p.project_id) || p.shared => p,
            _ => {
                return Err(bad_subnets_request(&format!(
                    "No default subnetpool found for IPv{version}"
                )));
            }
        },
    };
    if p.ip_version != i64::from(version) {
        return Err(bad_subnets_request(&format!(
            "Cannot allocate IPv{version} subnet from IPv{} subnet pool",
            p.ip_version
        )));
    }
    Ok(p)
}

/// Allocates a subnet's CIDR from `pool` for `project_id` in `tx` (Neutron's
/// `SubnetAllocator.allocate_subnet`): the length within the pool's bounds, the pool's
/// per-project prefix quota, then the best fit (or exactly the CIDR asked for). Takes the
/// pool's lock and reads the pool again under it. The caller writes the subnet with the pool's
/// id in the same transaction.
pub async fn allocate(
    state: &Services,
    tx: &mut store::Tx<'_>,
    ctx: &RequestContext,
    pool_id: &str,
    wanted: &Wanted,
) -> CoreResult<IpNet> {
    repo::lock(tx, state.store.backend, pool_id).await?;
    let pool = visible(tx, ctx, pool_id).await?;
    let version = version_of(&pool);
    let default = u8::try_from(pool.default_prefixlen).unwrap_or(u8::MAX);
    let specific = match wanted {
        Wanted::Any(_) => None,
        Wanted::Specific(net) => Some(*net),
        Wanted::AroundGateway(ip, len) => {
            let len = len.unwrap_or(default);
            let net = IpNet::new(*ip, len)
                .map_err(|_| {
                    NeutronError::invalid_input(format!("{ip}/{len} is not in a CIDR format."))
                })?
                .trunc();
            Some(net)
        }
    };
    let len = match (wanted, specific) {
        (_, Some(net)) => net.prefix_len(),
        (Wanted::Any(len), None) => len.unwrap_or(default),
        _ => default,
    };
    if i64::from(len) > pool.max_prefixlen {
        return Err(NeutronError::bad(
            "MaxPrefixSubnetAllocationError",
            format!(
                "Unable to allocate subnet with prefix length {len}, maximum allowed prefix is {}.",
                pool.max_prefixlen
            ),
        ));
    }
    if i64::from(len) < pool.min_prefixlen {
        return Err(NeutronError::bad(
            "MinPrefixSubnetAllocationError",
            format!(
                "Unable to allocate subnet with prefix length {len}, minimum allowed prefix is {}.",
                pool.min_prefixlen
            ),
        ));
    }
    check_prefix_quota(tx, &pool, len).await?;
    match specific {
        Some(net) => {
            if !repo::take_exact(tx, &pool.id, version, Block::of(&net)).await? {
                return Err(allocation_error(
                    "Cannot allocate requested subnet from the available set of prefixes",
                ));
            }
            Ok(net)
        }
        None => match repo::take_any(tx, &pool.id, version, len).await? {
            Some(block) => Ok(block.net(version)),
            None => Err(allocation_error(&format!(
                "Insufficient prefix space to allocate subnet size /{len}"
            ))),
        },
    }
}

/// The pool's `default_quota` (unset or 0: unlimited), in /32 (IPv4) or /64 (IPv6) units. As
/// Neutron counts it, the usage is that of the pool owner's subnets, whoever asks.
async fn check_prefix_quota(tx: &mut store::Tx<'_>, pool: &SubnetPool, len: u8) -> CoreResult<()> {
    let Some(quota) = pool.default_quota.filter(|q| *q > 0) else {
        return Ok(());
    };
    let unit: u32 = if pool.ip_version == 4 { 32 } else { 64 };
    // A length past the unit counts nothing, as in Neutron.
    let units = |len: u8| -> i128 {
        match unit.checked_sub(u32::from(len)) {
            Some(shift) => 1i128 << shift,
            None => 0,
        }
    };
    let mut used: i128 = 0;
    for cidr in repo::cidrs_of_project(&mut **tx, &pool.id, &pool.project_id).await? {
        if let Ok(net) = cidr.parse::<IpNet>() {
            used = used.saturating_add(units(net.prefix_len()));
        }
    }
    if used.saturating_add(units(len)) > i128::from(quota) {
        return Err(NeutronError::conflict(
            "SubnetPoolQuotaExceeded",
            "Per-project subnet pool prefix quota exceeded.",
        ));
    }
    Ok(())
}

/// The gateway of a subnet from a pool whose body names none. Neutron's allocator gives an
/// "any" request the network's first host whatever the version (`subnet.network + 1`), where a
/// subnet with its CIDR (a specific request too) gets IPv6's subnet-router anycast address.
pub fn default_gateway(wanted: &Wanted, net: &IpNet) -> Option<std::net::IpAddr> {
    match (wanted, net) {
        (Wanted::Any(_), IpNet::V6(v6)) if v6.prefix_len() < 128 => {
            let first = ipam::to_u128(net.network()) + 1;
            Some(ipam::from_u128(first, 6))
        }
        _ => ipam::default_gateway(net),
    }
}

/// Gives a deleted subnet's CIDR back to its pool (in the delete's transaction).
pub async fn release(
    state: &Services,
    tx: &mut store::Tx<'_>,
    pool_id: &str,
    cidr: &IpNet,
) -> CoreResult<()> {
    repo::lock(tx, state.store.backend, pool_id).await?;
    let Some(pool) = repo::get(&mut **tx, pool_id).await? else {
        return Ok(());
    };
    repo::give_back(tx, &pool.id, version_of(&pool), Block::of(cidr)).await?;
    Ok(())
}

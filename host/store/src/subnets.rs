//! Subnets. Their free addresses live in `ip_free_ranges` (see `store::ipam`).

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row, Transaction};

use super::listing::{self, Column, Key, Request, Table};
use super::{Store, flag};

/// A subnet as stored; list attributes are JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct Subnet {
    pub id: String,
    pub project_id: String,
    pub network_id: String,
    pub name: String,
    pub description: String,
    pub ip_version: i64,
    pub cidr: String,
    pub gateway_ip: Option<String>,
    pub enable_dhcp: bool,
    pub ipv6_ra_mode: Option<String>,
    pub ipv6_address_mode: Option<String>,
    /// `[{"start": ..., "end": ...}]`
    pub allocation_pools: String,
    pub dns_nameservers: String,
    pub host_routes: String,
    /// The pool its CIDR was allocated from.
    pub subnetpool_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}

macro_rules! columns {
    () => {
        "id, project_id, network_id, name, description, ip_version, cidr, gateway_ip, enable_dhcp, \
         ipv6_ra_mode, ipv6_address_mode, allocation_pools, dns_nameservers, host_routes, subnetpool_id, \
         created_at, updated_at, revision_number"
    };
}

fn from_row(r: &AnyRow) -> crate::Result<Subnet> {
    Ok(Subnet {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        network_id: r.try_get("network_id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        ip_version: r.try_get("ip_version")?,
        cidr: r.try_get("cidr")?,
        gateway_ip: r.try_get("gateway_ip")?,
        enable_dhcp: flag(r, "enable_dhcp")?,
        ipv6_ra_mode: r.try_get("ipv6_ra_mode")?,
        ipv6_address_mode: r.try_get("ipv6_address_mode")?,
        allocation_pools: r.try_get("allocation_pools")?,
        dns_nameservers: r.try_get("dns_nameservers")?,
        host_routes: r.try_get("host_routes")?,
        subnetpool_id: r.try_get("subnetpool_id")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        revision_number: r.try_get("revision_number")?,
    })
}

pub async fn insert(tx: &mut Transaction<'_, Any>, s: &Subnet) -> crate::Result<()> {
    sqlx::query(concat!(
        "INSERT INTO subnets (",
        columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
    ))
    .bind(&s.id)
    .bind(&s.project_id)
    .bind(&s.network_id)
    .bind(&s.name)
    .bind(&s.description)
    .bind(s.ip_version)
    .bind(&s.cidr)
    .bind(&s.gateway_ip)
    .bind(i64::from(s.enable_dhcp))
    .bind(&s.ipv6_ra_mode)
    .bind(&s.ipv6_address_mode)
    .bind(&s.allocation_pools)
    .bind(&s.dns_nameservers)
    .bind(&s.host_routes)
    .bind(&s.subnetpool_id)
    .bind(&s.created_at)
    .bind(&s.updated_at)
    .bind(s.revision_number)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes the attributes a PUT may change.
pub async fn update(tx: &mut Transaction<'_, Any>, s: &Subnet) -> crate::Result<()> {
    sqlx::query(
        "UPDATE subnets SET name = $2, description = $3, gateway_ip = $4, enable_dhcp = $5, \
         allocation_pools = $6, dns_nameservers = $7, host_routes = $8, updated_at = $9, \
         revision_number = $10 WHERE id = $1",
    )
    .bind(&s.id)
    .bind(&s.name)
    .bind(&s.description)
    .bind(&s.gateway_ip)
    .bind(i64::from(s.enable_dhcp))
    .bind(&s.allocation_pools)
    .bind(&s.dns_nameservers)
    .bind(&s.host_routes)
    .bind(&s.updated_at)
    .bind(s.revision_number)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    e: E,
    id: &str,
) -> crate::Result<Option<Subnet>> {
    sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM subnets WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(|r| from_row(&r))
    .transpose()
}

/// The subnets of a network, oldest first (the order default addresses are tried in).
pub async fn on_network<'e, E: Executor<'e, Database = Any>>(
    e: E,
    network_id: &str,
) -> crate::Result<Vec<Subnet>> {
    sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM subnets WHERE network_id = $1 ORDER BY created_at, id"
    ))
    .bind(network_id)
    .fetch_all(e)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// The subnets of each of `network_ids`, oldest first (as [`on_network`]), in as few
/// statements as the backend allows.
pub async fn on_networks(
    conn: &mut sqlx::AnyConnection,
    network_ids: &[String],
) -> crate::Result<std::collections::HashMap<String, Vec<Subnet>>> {
    let mut by_network: std::collections::HashMap<String, Vec<Subnet>> = Default::default();
    for (chunk, rows) in crate::value_chunks(crate::Backend::of(conn), network_ids, 1, 0) {
        let sql = format!(
            concat!(
                "SELECT ",
                columns!(),
                " FROM subnets WHERE network_id IN (VALUES {rows}) ORDER BY created_at, id"
            ),
            rows = rows
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let s = from_row(&row)?;
            by_network.entry(s.network_id.clone()).or_default().push(s);
        }
    }
    Ok(by_network)
}

/// `(network_id, subnet_id)` of the subnets of these networks, oldest first, for the
/// networks' `subnets` lists.
pub async fn ids_on_networks(
    store: &Store,
    network_ids: &[String],
) -> crate::Result<Vec<(String, String)>> {
    if network_ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks: Vec<String> = (1..=network_ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT network_id, id FROM subnets WHERE network_id IN ({}) ORDER BY created_at, id",
        marks.join(", ")
    );
    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
    for id in network_ids {
        query = query.bind(id);
    }
    Ok(query.fetch_all(&store.read).await?)
}

/// Whether the subnet's network is external (`router:external` of a subnet).
const EXTERNAL: &str = "(SELECT x.external FROM networks x WHERE x.id = s.network_id)";

/// Whether the subnet's network is shared: a subnet's `shared`, which Neutron filters on
/// (neutron-lib's subnet attribute, `is_filter`) but does not show.
const SHARED: &str = "(SELECT x.shared FROM networks x WHERE x.id = s.network_id)";

/// The subnets table as lists see it, by API attribute.
pub static TABLE: Table = Table {
    from: "subnets s",
    id: &COLUMNS[0],
    columns: &COLUMNS,
    visible: "s.project_id = {} OR s.network_id IN \
              (SELECT id FROM networks WHERE shared = 1 OR external = 1)",
    addresses: false,
    tags: Some(crate::tags::Kind::Subnet),
};

static COLUMNS: [Column; 18] = [
    Column::text("id", "s.id"),
    Column::text("name", "s.name"),
    Column::text("network_id", "s.network_id"),
    Column::text("tenant_id", "s.project_id"),
    Column::text("project_id", "s.project_id"),
    Column::int("ip_version", "s.ip_version"),
    Column::text("cidr", "s.cidr"),
    Column::text("gateway_ip", "s.gateway_ip").nullable(),
    Column::flag("enable_dhcp", "s.enable_dhcp"),
    Column::text("ipv6_ra_mode", "s.ipv6_ra_mode").nullable(),
    Column::text("ipv6_address_mode", "s.ipv6_address_mode").nullable(),
    Column::text("subnetpool_id", "s.subnetpool_id").nullable(),
    Column::text("description", "s.description"),
    Column::int("revision_number", "s.revision_number"),
    Column::text("created_at", "s.created_at"),
    Column::text("updated_at", "s.updated_at"),
    Column::flag("router:external", EXTERNAL),
    Column::flag("shared", SHARED),
];

/// One page of subnets as `req` describes it, each with whether its network is external and
/// its key.
pub async fn page(store: &Store, req: &Request) -> crate::Result<Vec<((Subnet, bool), Key)>> {
    let columns = format!("{}, {EXTERNAL} AS network_external", columns!());
    let select = listing::select(&TABLE, store.backend, &columns, req);
    listing::fetch_any(store, &select)
        .await?
        .iter()
        .map(|r| {
            let subnet = (from_row(r)?, flag(r, "network_external")?);
            Ok((subnet, listing::row_key(r, &TABLE, store.backend, req)?))
        })
        .collect()
}

/// Whether a port other than the given auto-deleted owners holds an address on the subnet.
pub async fn in_use(
    tx: &mut Transaction<'_, Any>,
    subnet_id: &str,
    auto_delete_owner: &str,
) -> crate::Result<bool> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT a.port_id FROM ip_allocations a JOIN ports p ON p.id = a.port_id \
         WHERE a.subnet_id = $1 AND p.device_owner <> $2 LIMIT 1",
    )
    .bind(subnet_id)
    .bind(auto_delete_owner)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(found.is_some())
}

/// Whether a router's port holds an address on the subnet (what keeps an auto-address
/// subnet, whose other ports' addresses follow from their MACs, from being deleted).
pub async fn used_by_routers(
    tx: &mut Transaction<'_, Any>,
    subnet_id: &str,
) -> crate::Result<bool> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT a.port_id FROM ip_allocations a JOIN ports p ON p.id = a.port_id \
         WHERE a.subnet_id = $1 AND p.device_owner LIKE 'network:router%' LIMIT 1",
    )
    .bind(subnet_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(found.is_some())
}

/// The ports holding an address on the subnet, with their networks and binding hosts.
pub async fn holders(
    tx: &mut Transaction<'_, Any>,
    subnet_id: &str,
) -> crate::Result<Vec<(String, String, String)>> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT p.id, p.network_id, p.binding_host FROM ip_allocations a \
         JOIN ports p ON p.id = a.port_id WHERE a.subnet_id = $1",
    )
    .bind(subnet_id)
    .fetch_all(&mut **tx)
    .await?)
}

/// Deletes a subnet, its free ranges and the addresses ports still hold on it.
pub async fn delete(tx: &mut Transaction<'_, Any>, id: &str) -> crate::Result<()> {
    crate::tags::clear(tx, crate::tags::Kind::Subnet, id).await?;
    for statement in [
        "DELETE FROM ip_allocations WHERE subnet_id = $1",
        "DELETE FROM ip_free_ranges WHERE subnet_id = $1",
        "DELETE FROM subnets WHERE id = $1",
    ] {
        sqlx::query(statement).bind(id).execute(&mut **tx).await?;
    }
    Ok(())
}

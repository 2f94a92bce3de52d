//! Ports and the addresses they hold.

use sqlx::{Any, Executor, Transaction};

use super::listing::{self, Column, Key, Request, Table};
use super::{AnyQuery, Backend, Store, StoredRow, flag, insert_rows, value_chunks};

/// A port as stored; list and dict attributes are JSON text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Port {
    pub id: String,
    pub project_id: String,
    pub network_id: String,
    pub name: String,
    pub description: String,
    pub mac_address: String,
    pub admin_state_up: bool,
    pub status: String,
    pub device_id: String,
    pub device_owner: String,
    pub port_security_enabled: bool,
    pub security_groups: String,
    pub allowed_address_pairs: String,
    pub extra_dhcp_opts: String,
    pub dns_name: String,
    pub binding_host: String,
    pub binding_vnic_type: String,
    pub binding_profile: String,
    pub binding_vif_type: String,
    pub binding_vif_details: String,
    /// Every driver's decision of the last binding, as JSON.
    pub binding_result: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
    /// In the order they were given.
    pub fixed_ips: Vec<FixedIp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedIp {
    pub subnet_id: String,
    pub ip_address: String,
}

macro_rules! columns {
    () => {
        "p.id, p.project_id, p.network_id, p.name, p.description, p.mac_address, p.admin_state_up, \
         p.status, p.device_id, p.device_owner, p.port_security_enabled, p.security_groups, \
         p.allowed_address_pairs, p.extra_dhcp_opts, p.dns_name, p.binding_host, p.binding_vnic_type, \
         p.binding_profile, p.binding_vif_type, p.binding_vif_details, p.binding_result, p.created_at, \
         p.updated_at, p.revision_number"
    };
}

fn from_row(r: &(impl StoredRow + ?Sized)) -> crate::Result<Port> {
    Ok(Port {
        id: r.text("id")?,
        project_id: r.text("project_id")?,
        network_id: r.text("network_id")?,
        name: r.text("name")?,
        description: r.text("description")?,
        mac_address: r.text("mac_address")?,
        admin_state_up: flag(r, "admin_state_up")?,
        status: r.text("status")?,
        device_id: r.text("device_id")?,
        device_owner: r.text("device_owner")?,
        port_security_enabled: flag(r, "port_security_enabled")?,
        security_groups: r.text("security_groups")?,
        allowed_address_pairs: r.text("allowed_address_pairs")?,
        extra_dhcp_opts: r.text("extra_dhcp_opts")?,
        dns_name: r.text("dns_name")?,
        binding_host: r.text("binding_host")?,
        binding_vnic_type: r.text("binding_vnic_type")?,
        binding_profile: r.text("binding_profile")?,
        binding_vif_type: r.text("binding_vif_type")?,
        binding_vif_details: r.text("binding_vif_details")?,
        binding_result: r.text_or_null("binding_result")?,
        created_at: r.text("created_at")?,
        updated_at: r.text("updated_at")?,
        revision_number: r.int("revision_number")?,
        fixed_ips: Vec::new(),
    })
}

/// Inserts the port rows (not their addresses), as few statements as the backend allows;
/// returns how many were new (a port whose MAC is already used on its network is not inserted).
pub async fn insert(tx: &mut Transaction<'_, Any>, ports: &[Port]) -> crate::Result<u64> {
    let statement = |rows: &str| {
        format!(
            "INSERT INTO ports (id, project_id, network_id, name, description, mac_address, admin_state_up, \
             status, device_id, device_owner, port_security_enabled, security_groups, allowed_address_pairs, \
             extra_dhcp_opts, dns_name, binding_host, binding_vnic_type, binding_profile, binding_vif_type, \
             binding_vif_details, binding_result, created_at, updated_at, revision_number) VALUES {rows} \
             ON CONFLICT DO NOTHING"
        )
    };
    let inserted = insert_rows(tx, ports, 24, statement, |query, p| {
        bind_attributes(query.bind(&p.id).bind(&p.project_id).bind(&p.network_id), p)
            .bind(&p.created_at)
            .bind(&p.updated_at)
            .bind(p.revision_number)
    })
    .await?;
    crate::port_groups::added(tx, ports).await?;
    Ok(inserted)
}

/// Which of `macs` ports on `network_id` already have (in as few statements as the backend
/// allows).
pub async fn macs_in_use(
    conn: &mut sqlx::AnyConnection,
    network_id: &str,
    macs: &[String],
) -> crate::Result<Vec<String>> {
    let mut used = Vec::new();
    for (chunk, rows) in value_chunks(Backend::of(conn), macs, 1, 1) {
        let sql = format!(
            "SELECT mac_address FROM ports WHERE network_id = $1 AND mac_address IN (VALUES {rows})"
        );
        let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(network_id);
        for mac in chunk {
            query = query.bind(mac);
        }
        used.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(used)
}

/// The `(network_id, mac_address)` pairs of `pairs` that ports already hold, in as few
/// statements as the backend allows (a batch of creates over many networks checks its
/// generated MACs in one round trip).
pub async fn macs_in_use_on(
    conn: &mut sqlx::AnyConnection,
    pairs: &[(String, String)],
) -> crate::Result<Vec<(String, String)>> {
    let mut used = Vec::new();
    for (chunk, rows) in value_chunks(Backend::of(conn), pairs, 2, 0) {
        // Joined from the VALUES (not `(a, b) IN (VALUES ...)`, which SQLite answers with a
        // scan of the whole index): one index probe a pair.
        let sql = format!(
            "SELECT p.network_id, p.mac_address FROM (VALUES {rows}) AS v \
             JOIN ports p ON p.network_id = v.column1 AND p.mac_address = v.column2"
        );
        let mut query = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
        for (network, mac) in chunk {
            query = query.bind(network).bind(mac);
        }
        used.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(used)
}

/// Binds the 18 columns a port's insert and update share, `name` to `binding_result`, in the
/// table's order.
fn bind_attributes<'q>(query: AnyQuery<'q>, p: &'q Port) -> AnyQuery<'q> {
    query
        .bind(&p.name)
        .bind(&p.description)
        .bind(&p.mac_address)
        .bind(i64::from(p.admin_state_up))
        .bind(&p.status)
        .bind(&p.device_id)
        .bind(&p.device_owner)
        .bind(i64::from(p.port_security_enabled))
        .bind(&p.security_groups)
        .bind(&p.allowed_address_pairs)
        .bind(&p.extra_dhcp_opts)
        .bind(&p.dns_name)
        .bind(&p.binding_host)
        .bind(&p.binding_vnic_type)
        .bind(&p.binding_profile)
        .bind(&p.binding_vif_type)
        .bind(&p.binding_vif_details)
        .bind(&p.binding_result)
}

/// Writes every mutable column (not the addresses).
pub async fn update(tx: &mut Transaction<'_, Any>, p: &Port) -> crate::Result<()> {
    let query = sqlx::query(
        "UPDATE ports SET name = $2, description = $3, mac_address = $4, admin_state_up = $5, status = $6, \
         device_id = $7, device_owner = $8, port_security_enabled = $9, security_groups = $10, \
         allowed_address_pairs = $11, extra_dhcp_opts = $12, dns_name = $13, binding_host = $14, \
         binding_vnic_type = $15, binding_profile = $16, binding_vif_type = $17, binding_vif_details = $18, \
         binding_result = $19, updated_at = $20, revision_number = $21 WHERE id = $1",
    );
    bind_attributes(query.bind(&p.id), p)
        .bind(&p.updated_at)
        .bind(p.revision_number)
        .execute(&mut **tx)
        .await?;
    crate::port_groups::rebound(tx, p).await
}

/// One port with its addresses.
pub async fn get(tx: &mut sqlx::AnyConnection, id: &str) -> crate::Result<Option<Port>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM ports p WHERE p.id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let mut port = from_row(&row)?;
    port.fixed_ips = fixed_ips(&mut *tx, id).await?;
    Ok(Some(port))
}

pub async fn fixed_ips<'e, E: Executor<'e, Database = Any>>(
    e: E,
    port_id: &str,
) -> crate::Result<Vec<FixedIp>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT subnet_id, ip_address FROM ip_allocations WHERE port_id = $1 ORDER BY position",
    )
    .bind(port_id)
    .fetch_all(e)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(subnet_id, ip_address)| FixedIp {
            subnet_id,
            ip_address,
        })
        .collect())
}

/// Columns a list may be narrowed by in SQL, by API attribute name.
pub const FILTER_COLUMNS: &[(&str, &str)] = &[
    ("id", "p.id"),
    ("network_id", "p.network_id"),
    ("project_id", "p.project_id"),
    ("tenant_id", "p.project_id"),
    ("device_id", "p.device_id"),
    ("device_owner", "p.device_owner"),
    ("mac_address", "p.mac_address"),
    ("name", "p.name"),
    ("status", "p.status"),
    ("binding:host_id", "p.binding_host"),
];

/// Ports matching `filters` (column from [`FILTER_COLUMNS`], any of the values), with their
/// addresses, in one query. `visible_to`: only that project's ports (None: all). On SQLite
/// through the typed driver, elsewhere through `Any`: the same SQL and the same decoding.
pub async fn list(
    store: &Store,
    filters: &[(&'static str, Vec<String>)],
    visible_to: Option<&str>,
) -> crate::Result<Vec<Port>> {
    let mut sql = String::from(concat!(
        "SELECT ",
        columns!(),
        ", a.subnet_id AS a_subnet, a.ip_address AS a_ip FROM ports p \
         LEFT JOIN ip_allocations a ON a.port_id = p.id WHERE 1 = 1"
    ));
    let mut values: Vec<&str> = Vec::new();
    for (column, wanted) in filters {
        let marks: Vec<String> = wanted
            .iter()
            .map(|v| {
                values.push(v);
                format!("${}", values.len())
            })
            .collect();
        sql.push_str(&format!(" AND {column} IN ({})", marks.join(", ")));
    }
    if let Some(project) = visible_to {
        values.push(project);
        sql.push_str(&format!(" AND p.project_id = ${}", values.len()));
    }
    sql.push_str(" ORDER BY p.id, a.position");
    match &store.sqlite_read {
        Some(pool) => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for v in values {
                query = query.bind(v);
            }
            with_addresses(&query.fetch_all(pool).await?)
        }
        None => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for v in values {
                query = query.bind(v);
            }
            with_addresses(&query.fetch_all(&store.read).await?)
        }
    }
}

/// The ports table as lists see it, by API attribute. `mac_address` is stored in lowercase.
pub static TABLE: Table = Table {
    from: "ports p",
    id: &COLUMNS[0],
    columns: &COLUMNS,
    visible: "p.project_id = {}",
    addresses: true,
    tags: Some(crate::tags::Kind::Port),
};

static COLUMNS: [Column; 20] = [
    Column::text("id", "p.id"),
    Column::text("name", "p.name"),
    Column::text("network_id", "p.network_id"),
    Column::text("tenant_id", "p.project_id"),
    Column::text("project_id", "p.project_id"),
    Column::text("mac_address", "p.mac_address"),
    Column::flag("admin_state_up", "p.admin_state_up"),
    Column::text("status", "p.status"),
    Column::text("device_id", "p.device_id"),
    Column::text("device_owner", "p.device_owner"),
    Column::flag("port_security_enabled", "p.port_security_enabled"),
    Column::text("security_groups", "p.security_groups").json_list(),
    Column::text("binding:host_id", "p.binding_host"),
    Column::text("binding:vnic_type", "p.binding_vnic_type"),
    Column::text("binding:vif_type", "p.binding_vif_type"),
    Column::text("description", "p.description"),
    Column::text("dns_name", "p.dns_name"),
    Column::int("revision_number", "p.revision_number"),
    Column::text("created_at", "p.created_at"),
    Column::text("updated_at", "p.updated_at"),
];

/// One page of ports as `req` describes it, with their addresses when `addresses`, each with
/// its key (where a page after it starts).
pub async fn page(
    store: &Store,
    req: &Request,
    addresses: bool,
) -> crate::Result<Vec<(Port, Key)>> {
    let backend = store.backend;
    let mut select = listing::select(&TABLE, backend, columns!(), req);
    if addresses {
        // The page first (its LIMIT counts ports), then its addresses.
        select.sql = format!(
            "SELECT q.*, a.subnet_id AS a_subnet, a.ip_address AS a_ip FROM ({}) q \
             LEFT JOIN ip_allocations a ON a.port_id = q.id ORDER BY {}, a.position",
            select.sql,
            listing::outer_order(&TABLE, backend, req)
        );
    }
    listing::fetch(store, &select, |rows| {
        let mut keys = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            // A port's first row (with addresses, one row per address).
            let first = !addresses || i == 0 || row.text("id")? != rows[i - 1].text("id")?;
            if first {
                keys.push(listing::row_key(*row, &TABLE, backend, req)?);
            }
        }
        let ports = if addresses {
            with_addresses(rows.iter().copied())?
        } else {
            rows.iter()
                .map(|r| from_row(*r))
                .collect::<crate::Result<Vec<_>>>()?
        };
        Ok(ports.into_iter().zip(keys).collect())
    })
    .await
}

/// Ports from the rows of a port-address join ordered by port: one row per address (or one
/// with null address columns for a port without any).
fn with_addresses<'r, R: StoredRow + ?Sized + 'r>(
    rows: impl IntoIterator<Item = &'r R>,
) -> crate::Result<Vec<Port>> {
    let mut ports: Vec<Port> = Vec::new();
    for row in rows {
        let id = row.text("id")?;
        if ports.last().is_none_or(|p| p.id != id) {
            ports.push(from_row(row)?);
        }
        let subnet = row.text_or_null("a_subnet")?;
        let ip = row.text_or_null("a_ip")?;
        if let (Some(subnet_id), Some(ip_address), Some(port)) = (subnet, ip, ports.last_mut()) {
            port.fixed_ips.push(FixedIp {
                subnet_id,
                ip_address,
            });
        }
    }
    Ok(ports)
}

/// `(id, device_owner)` of every port on a network.
pub async fn on_network(
    tx: &mut Transaction<'_, Any>,
    network_id: &str,
) -> crate::Result<Vec<(String, String)>> {
    Ok(
        sqlx::query_as("SELECT id, device_owner FROM ports WHERE network_id = $1 ORDER BY id")
            .bind(network_id)
            .fetch_all(&mut **tx)
            .await?,
    )
}

/// `(id, binding_host)` of every port on a network.
pub async fn hosts_on_network(
    tx: &mut Transaction<'_, Any>,
    network_id: &str,
) -> crate::Result<Vec<(String, String)>> {
    Ok(
        sqlx::query_as("SELECT id, binding_host FROM ports WHERE network_id = $1 ORDER BY id")
            .bind(network_id)
            .fetch_all(&mut **tx)
            .await?,
    )
}

/// Ids of ports waiting for their binding (a host, but unbound: written to be bound after
/// their commit, which did not happen), after `after` in id order, at most `limit`.
pub async fn binding_pending(
    conn: &mut sqlx::AnyConnection,
    after: &str,
    limit: i64,
) -> crate::Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM ports WHERE binding_vif_type = 'unbound' AND binding_host <> '' \
         AND id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// `(binding_host, status)` of a port, or None when there is no such port.
pub async fn host_and_status(
    conn: &mut sqlx::AnyConnection,
    id: &str,
) -> crate::Result<Option<(String, String)>> {
    Ok(
        sqlx::query_as("SELECT binding_host, status FROM ports WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Sets a port's status, bumping its revision; the agent reporting it is the port's host.
pub async fn set_status(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    status: &str,
    updated_at: &str,
) -> crate::Result<()> {
    sqlx::query(
        "UPDATE ports SET status = $2, updated_at = $3, revision_number = revision_number + 1 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Ports of the given networks, with their addresses (one query, however many networks).
pub async fn on_networks(store: &Store, network_ids: &[String]) -> crate::Result<Vec<Port>> {
    if network_ids.is_empty() {
        return Ok(Vec::new());
    }
    list(store, &[("p.network_id", network_ids.to_vec())], None).await
}

/// Deletes the port row and its address rows (the caller gives addresses back to IPAM first),
/// and releases the dynamic segments only its binding used.
pub async fn delete(tx: &mut Transaction<'_, Any>, id: &str) -> crate::Result<()> {
    crate::dynamic_segments::forget_port(tx, id).await?;
    crate::port_groups::removed(tx, id).await?;
    crate::tags::clear(tx, crate::tags::Kind::Port, id).await?;
    for statement in [
        "DELETE FROM ip_allocations WHERE port_id = $1",
        "DELETE FROM ports WHERE id = $1",
    ] {
        sqlx::query(statement).bind(id).execute(&mut **tx).await?;
    }
    Ok(())
}

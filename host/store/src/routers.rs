//! Routers, and which host's L3 agent serves each (`router_hosting`). A router's interfaces
//! and gateway are ordinary ports (device_id = the router's id), read through [`port_ids`].

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row, Transaction};

use super::listing::{self, Column, Key, Request, Table};
use super::{Backend, Store, flag, lock_named};

type Tx<'a> = Transaction<'a, Any>;

/// The owners of a router's own ports.
pub const INTERFACE_OWNER: &str = "network:router_interface";
pub const GATEWAY_OWNER: &str = "network:router_gateway";

/// A router as stored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Router {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub status: String,
    pub gw_network_id: Option<String>,
    pub gw_port_id: Option<String>,
    pub enable_snat: bool,
    /// JSON list of `{"destination", "nexthop"}`.
    pub routes: String,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}

macro_rules! columns {
    () => {
        "r.id, r.project_id, r.name, r.description, r.admin_state_up, r.status, r.gw_network_id, \
         r.gw_port_id, r.enable_snat, r.routes, r.created_at, r.updated_at, r.revision_number"
    };
}

fn from_row(r: &AnyRow) -> crate::Result<Router> {
    Ok(Router {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        admin_state_up: flag(r, "admin_state_up")?,
        status: r.try_get("status")?,
        gw_network_id: r.try_get("gw_network_id")?,
        gw_port_id: r.try_get("gw_port_id")?,
        enable_snat: flag(r, "enable_snat")?,
        routes: r.try_get("routes")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        revision_number: r.try_get("revision_number")?,
    })
}

/// Serialises the changes of one router (its ports, gateway, routes, hosting) across
/// transactions and servers: two interfaces added at once are checked one after the other.
pub async fn lock(tx: &mut Tx<'_>, backend: Backend, id: &str) -> crate::Result<()> {
    lock_named(tx, backend, &format!("router/{id}")).await
}

pub async fn insert(tx: &mut Tx<'_>, r: &Router) -> crate::Result<()> {
    sqlx::query(
        "INSERT INTO routers (id, project_id, name, description, admin_state_up, status, \
         gw_network_id, gw_port_id, enable_snat, routes, created_at, updated_at, revision_number) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&r.id)
    .bind(&r.project_id)
    .bind(&r.name)
    .bind(&r.description)
    .bind(i64::from(r.admin_state_up))
    .bind(&r.status)
    .bind(&r.gw_network_id)
    .bind(&r.gw_port_id)
    .bind(i64::from(r.enable_snat))
    .bind(&r.routes)
    .bind(&r.created_at)
    .bind(&r.updated_at)
    .bind(r.revision_number)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes every attribute but the id, project and creation time.
pub async fn update(tx: &mut Tx<'_>, r: &Router) -> crate::Result<()> {
    sqlx::query(
        "UPDATE routers SET name = $2, description = $3, admin_state_up = $4, status = $5, \
         gw_network_id = $6, gw_port_id = $7, enable_snat = $8, routes = $9, updated_at = $10, \
         revision_number = $11 WHERE id = $1",
    )
    .bind(&r.id)
    .bind(&r.name)
    .bind(&r.description)
    .bind(i64::from(r.admin_state_up))
    .bind(&r.status)
    .bind(&r.gw_network_id)
    .bind(&r.gw_port_id)
    .bind(i64::from(r.enable_snat))
    .bind(&r.routes)
    .bind(&r.updated_at)
    .bind(r.revision_number)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    e: E,
    id: &str,
) -> crate::Result<Option<Router>> {
    sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM routers r WHERE r.id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(|r| from_row(&r))
    .transpose()
}

/// Deletes a router, its tags and its hosting row.
pub async fn delete(tx: &mut Tx<'_>, id: &str) -> crate::Result<bool> {
    crate::tags::clear(tx, crate::tags::Kind::Router, id).await?;
    sqlx::query("DELETE FROM router_hosting WHERE router_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    let done = sqlx::query("DELETE FROM routers WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The ids of the router's ports of `owner` (interfaces or gateway), oldest first.
pub async fn port_ids<'e, E: Executor<'e, Database = Any>>(
    e: E,
    router_id: &str,
    owner: &str,
) -> crate::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM ports WHERE device_id = $1 AND device_owner = $2 ORDER BY created_at, id",
    )
    .bind(router_id)
    .bind(owner)
    .fetch_all(e)
    .await?)
}

/// Routers with a gateway on the network (what a floating IP there may go through).
pub async fn with_gateway_on<'e, E: Executor<'e, Database = Any>>(
    e: E,
    network_id: &str,
) -> crate::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM routers WHERE gw_network_id = $1 ORDER BY created_at, id",
    )
    .bind(network_id)
    .fetch_all(e)
    .await?)
}

/// The routers with an interface on the subnet, with that interface's address there.
pub async fn interfaces_on_subnet<'e, E: Executor<'e, Database = Any>>(
    e: E,
    subnet_id: &str,
) -> crate::Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        // CROSS JOIN keeps SQLite's order: the router interface ports first (their partial
        // index), then each one's allocation on the subnet (migration 0024).
        "SELECT p.device_id, a.ip_address FROM ports p CROSS JOIN ip_allocations a \
         WHERE a.port_id = p.id AND a.subnet_id = $1 \
         AND p.device_owner = 'network:router_interface' ORDER BY p.created_at, p.id",
    )
    .bind(subnet_id)
    .fetch_all(e)
    .await?)
}

// ---------------------------------------------------------------------------------------------
// Hosting: the L3 agent (by host) serving each router.

/// The host serving the router, if it is scheduled.
pub async fn host_of<'e, E: Executor<'e, Database = Any>>(
    e: E,
    router_id: &str,
) -> crate::Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT host FROM router_hosting WHERE router_id = $1")
            .bind(router_id)
            .fetch_optional(e)
            .await?,
    )
}

/// Gives the router to `host` (replacing any host it had).
pub async fn set_host(tx: &mut Tx<'_>, router_id: &str, host: &str) -> crate::Result<()> {
    sqlx::query("DELETE FROM router_hosting WHERE router_id = $1")
        .bind(router_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("INSERT INTO router_hosting (router_id, host) VALUES ($1, $2)")
        .bind(router_id)
        .bind(host)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Takes the router from its host; whether it had one.
pub async fn unset_host(tx: &mut Tx<'_>, router_id: &str) -> crate::Result<bool> {
    let done = sqlx::query("DELETE FROM router_hosting WHERE router_id = $1")
        .bind(router_id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// How many routers each host serves.
pub async fn routers_per_host<'e, E: Executor<'e, Database = Any>>(
    e: E,
) -> crate::Result<std::collections::HashMap<String, i64>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT host, COUNT(*) FROM router_hosting GROUP BY host")
            .fetch_all(e)
            .await?;
    Ok(rows.into_iter().collect())
}

/// The routers `host` serves.
pub async fn on_host<'e, E: Executor<'e, Database = Any>>(
    e: E,
    host: &str,
) -> crate::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT router_id FROM router_hosting WHERE host = $1 ORDER BY router_id",
    )
    .bind(host)
    .fetch_all(e)
    .await?)
}

/// Routers waiting for an L3 agent: unscheduled, with a gateway or an interface.
pub async fn waiting<'e, E: Executor<'e, Database = Any>>(e: E) -> crate::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT r.id FROM routers r WHERE NOT EXISTS \
         (SELECT 1 FROM router_hosting h WHERE h.router_id = r.id) AND \
         (r.gw_port_id IS NOT NULL OR EXISTS (SELECT 1 FROM ports p WHERE p.device_id = r.id \
          AND p.device_owner = 'network:router_interface')) ORDER BY r.created_at, r.id",
    )
    .fetch_all(e)
    .await?)
}

/// The routers table as lists see it, by API attribute.
pub static TABLE: Table = Table {
    from: "routers r",
    id: &COLUMNS[0],
    columns: &COLUMNS,
    visible: "r.project_id = {}",
    addresses: false,
    tags: Some(crate::tags::Kind::Router),
};

static COLUMNS: [Column; 10] = [
    Column::text("id", "r.id"),
    Column::text("name", "r.name"),
    Column::text("tenant_id", "r.project_id"),
    Column::text("project_id", "r.project_id"),
    Column::text("description", "r.description"),
    Column::flag("admin_state_up", "r.admin_state_up"),
    Column::text("status", "r.status"),
    Column::int("revision_number", "r.revision_number"),
    Column::text("created_at", "r.created_at"),
    Column::text("updated_at", "r.updated_at"),
];

/// One page of routers as `req` describes it, each with its key.
pub async fn page(store: &Store, req: &Request) -> crate::Result<Vec<(Router, Key)>> {
    let select = listing::select(&TABLE, store.backend, columns!(), req);
    listing::fetch_any(store, &select)
        .await?
        .iter()
        .map(|r| {
            Ok((
                from_row(r)?,
                listing::row_key(r, &TABLE, store.backend, req)?,
            ))
        })
        .collect()
}

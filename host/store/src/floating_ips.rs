//! Floating IPs. Each holds an address through its external port (device_owner
//! `network:floatingip`); its association (fixed port, fixed address, router) is unique per
//! external network by the table's constraint.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row, Transaction};

use super::Store;
use super::listing::{self, Column, Key, Request, Table};

type Tx<'a> = Transaction<'a, Any>;

/// The owner of a floating IP's external port.
pub const PORT_OWNER: &str = "network:floatingip";

/// A floating IP as stored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FloatingIp {
    pub id: String,
    pub project_id: String,
    pub description: String,
    pub floating_network_id: String,
    pub floating_ip_address: String,
    pub floating_port_id: String,
    pub fixed_port_id: Option<String>,
    pub fixed_ip_address: Option<String>,
    pub router_id: Option<String>,
    pub last_known_router_id: Option<String>,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}

macro_rules! columns {
    () => {
        "f.id, f.project_id, f.description, f.floating_network_id, f.floating_ip_address, \
         f.floating_port_id, f.fixed_port_id, f.fixed_ip_address, f.router_id, \
         f.last_known_router_id, f.status, f.created_at, f.updated_at, f.revision_number"
    };
}

fn from_row(r: &AnyRow) -> crate::Result<FloatingIp> {
    Ok(FloatingIp {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        description: r.try_get("description")?,
        floating_network_id: r.try_get("floating_network_id")?,
        floating_ip_address: r.try_get("floating_ip_address")?,
        floating_port_id: r.try_get("floating_port_id")?,
        fixed_port_id: r.try_get("fixed_port_id")?,
        fixed_ip_address: r.try_get("fixed_ip_address")?,
        router_id: r.try_get("router_id")?,
        last_known_router_id: r.try_get("last_known_router_id")?,
        status: r.try_get("status")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        revision_number: r.try_get("revision_number")?,
    })
}

/// Writes a new floating IP; an association another holds is a unique violation.
pub async fn insert(tx: &mut Tx<'_>, f: &FloatingIp) -> crate::Result<()> {
    sqlx::query(
        "INSERT INTO floatingips (id, project_id, description, floating_network_id, \
         floating_ip_address, floating_port_id, fixed_port_id, fixed_ip_address, router_id, \
         last_known_router_id, status, created_at, updated_at, revision_number) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&f.id)
    .bind(&f.project_id)
    .bind(&f.description)
    .bind(&f.floating_network_id)
    .bind(&f.floating_ip_address)
    .bind(&f.floating_port_id)
    .bind(&f.fixed_port_id)
    .bind(&f.fixed_ip_address)
    .bind(&f.router_id)
    .bind(&f.last_known_router_id)
    .bind(&f.status)
    .bind(&f.created_at)
    .bind(&f.updated_at)
    .bind(f.revision_number)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes what an update may change; an association another holds is a unique violation.
pub async fn update(tx: &mut Tx<'_>, f: &FloatingIp) -> crate::Result<()> {
    sqlx::query(
        "UPDATE floatingips SET description = $2, fixed_port_id = $3, fixed_ip_address = $4, \
         router_id = $5, last_known_router_id = $6, status = $7, updated_at = $8, \
         revision_number = $9 WHERE id = $1",
    )
    .bind(&f.id)
    .bind(&f.description)
    .bind(&f.fixed_port_id)
    .bind(&f.fixed_ip_address)
    .bind(&f.router_id)
    .bind(&f.last_known_router_id)
    .bind(&f.status)
    .bind(&f.updated_at)
    .bind(f.revision_number)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    e: E,
    id: &str,
) -> crate::Result<Option<FloatingIp>> {
    sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM floatingips f WHERE f.id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(|r| from_row(&r))
    .transpose()
}

async fn where_column<'e, E: Executor<'e, Database = Any>>(
    e: E,
    column: &str,
    value: &str,
) -> crate::Result<Vec<FloatingIp>> {
    let sql = format!(
        "SELECT {} FROM floatingips f WHERE f.{column} = $1 ORDER BY f.created_at, f.id",
        columns!()
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(value)
        .fetch_all(e)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// The floating IPs associated with a (fixed) port.
pub async fn of_port<'e, E: Executor<'e, Database = Any>>(
    e: E,
    port_id: &str,
) -> crate::Result<Vec<FloatingIp>> {
    where_column(e, "fixed_port_id", port_id).await
}

/// The floating IPs a router serves.
pub async fn of_router<'e, E: Executor<'e, Database = Any>>(
    e: E,
    router_id: &str,
) -> crate::Result<Vec<FloatingIp>> {
    where_column(e, "router_id", router_id).await
}

/// The floating IP holding this external port, if any.
pub async fn of_floating_port<'e, E: Executor<'e, Database = Any>>(
    e: E,
    port_id: &str,
) -> crate::Result<Option<FloatingIp>> {
    Ok(where_column(e, "floating_port_id", port_id).await?.pop())
}

/// Deletes a floating IP and its tags (its external port is the caller's).
pub async fn delete(tx: &mut Tx<'_>, id: &str) -> crate::Result<bool> {
    crate::tags::clear(tx, crate::tags::Kind::FloatingIp, id).await?;
    let done = sqlx::query("DELETE FROM floatingips WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The floating IPs table as lists see it, by API attribute.
pub static TABLE: Table = Table {
    from: "floatingips f",
    id: &COLUMNS[0],
    columns: &COLUMNS,
    visible: "f.project_id = {}",
    addresses: false,
    tags: Some(crate::tags::Kind::FloatingIp),
};

static COLUMNS: [Column; 13] = [
    Column::text("id", "f.id"),
    Column::text("tenant_id", "f.project_id"),
    Column::text("project_id", "f.project_id"),
    Column::text("description", "f.description"),
    Column::text("floating_network_id", "f.floating_network_id"),
    Column::text("floating_ip_address", "f.floating_ip_address"),
    Column::text("port_id", "f.fixed_port_id").nullable(),
    Column::text("fixed_ip_address", "f.fixed_ip_address").nullable(),
    Column::text("router_id", "f.router_id").nullable(),
    Column::text("status", "f.status"),
    Column::int("revision_number", "f.revision_number"),
    Column::text("created_at", "f.created_at"),
    Column::text("updated_at", "f.updated_at"),
];

/// One page of floating IPs as `req` describes it, each with its key.
pub async fn page(store: &Store, req: &Request) -> crate::Result<Vec<(FloatingIp, Key)>> {
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

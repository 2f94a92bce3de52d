//! Subnet pools and their free space.
//!
//! A pool's free space is kept as the fewest aligned blocks (`subnetpool_free_blocks`, see
//! `neutrino_ipam::prefixes`): an allocation cuts the best-fitting block (the smallest free
//! block long enough, lowest first, as Neutron's `SubnetAllocator` picks) and a subnet's
//! delete gives its block back, merged with its buddy while that is free. Each is a few index
//! seeks, not a read of the pool's subnets. Allocations, releases and prefix changes of one pool
//! are serialised by its named lock ([`lock`]), taken by the caller inside its transaction.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row, Transaction};

use super::listing::{self, Column, Key, Request, Table};
use super::{Backend, Store, flag, insert_rows, lock_named};
use neutrino_ipam::prefixes::{self, Block};
use neutrino_ipam::{from_key, key};

type Tx<'a> = Transaction<'a, Any>;

/// A subnet pool as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SubnetPool {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub ip_version: i64,
    /// JSON list of CIDRs, compacted, in address order.
    pub prefixes: String,
    pub default_prefixlen: i64,
    pub min_prefixlen: i64,
    pub max_prefixlen: i64,
    pub default_quota: Option<i64>,
    pub shared: bool,
    pub is_default: bool,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}

macro_rules! columns {
    () => {
        "sp.id, sp.project_id, sp.name, sp.description, sp.ip_version, sp.prefixes, \
         sp.default_prefixlen, sp.min_prefixlen, sp.max_prefixlen, sp.default_quota, sp.shared, \
         sp.is_default, sp.created_at, sp.updated_at, sp.revision_number"
    };
}

fn from_row(r: &AnyRow) -> crate::Result<SubnetPool> {
    Ok(SubnetPool {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        ip_version: r.try_get("ip_version")?,
        prefixes: r.try_get("prefixes")?,
        default_prefixlen: r.try_get("default_prefixlen")?,
        min_prefixlen: r.try_get("min_prefixlen")?,
        max_prefixlen: r.try_get("max_prefixlen")?,
        default_quota: r.try_get("default_quota")?,
        shared: flag(r, "shared")?,
        is_default: flag(r, "is_default")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        revision_number: r.try_get("revision_number")?,
    })
}

/// Serialises the changes of one pool's space (see the module's comment).
pub async fn lock(tx: &mut Tx<'_>, backend: Backend, id: &str) -> crate::Result<()> {
    lock_named(tx, backend, &format!("subnetpool/{id}")).await
}

/// Writes a new pool. A second default pool of its IP version is a unique violation.
pub async fn insert(tx: &mut Tx<'_>, p: &SubnetPool) -> crate::Result<()> {
    sqlx::query(
        "INSERT INTO subnetpools (id, project_id, name, description, ip_version, prefixes, \
         default_prefixlen, min_prefixlen, max_prefixlen, default_quota, shared, is_default, \
         created_at, updated_at, revision_number) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(&p.id)
    .bind(&p.project_id)
    .bind(&p.name)
    .bind(&p.description)
    .bind(p.ip_version)
    .bind(&p.prefixes)
    .bind(p.default_prefixlen)
    .bind(p.min_prefixlen)
    .bind(p.max_prefixlen)
    .bind(p.default_quota)
    .bind(i64::from(p.shared))
    .bind(i64::from(p.is_default))
    .bind(&p.created_at)
    .bind(&p.updated_at)
    .bind(p.revision_number)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes the attributes a PUT may change.
pub async fn update(tx: &mut Tx<'_>, p: &SubnetPool) -> crate::Result<()> {
    sqlx::query(
        "UPDATE subnetpools SET name = $2, description = $3, prefixes = $4, \
         default_prefixlen = $5, min_prefixlen = $6, max_prefixlen = $7, default_quota = $8, \
         is_default = $9, updated_at = $10, revision_number = $11 WHERE id = $1",
    )
    .bind(&p.id)
    .bind(&p.name)
    .bind(&p.description)
    .bind(&p.prefixes)
    .bind(p.default_prefixlen)
    .bind(p.min_prefixlen)
    .bind(p.max_prefixlen)
    .bind(p.default_quota)
    .bind(i64::from(p.is_default))
    .bind(&p.updated_at)
    .bind(p.revision_number)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    e: E,
    id: &str,
) -> crate::Result<Option<SubnetPool>> {
    sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM subnetpools sp WHERE sp.id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(|r| from_row(&r))
    .transpose()
}

/// The default pool of an IP version, if one is set.
pub async fn default_of<'e, E: Executor<'e, Database = Any>>(
    e: E,
    ip_version: i64,
) -> crate::Result<Option<SubnetPool>> {
    sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM subnetpools sp WHERE sp.ip_version = $1 AND sp.is_default = 1"
    ))
    .bind(ip_version)
    .fetch_optional(e)
    .await?
    .map(|r| from_row(&r))
    .transpose()
}

/// Whether a subnet was allocated from the pool.
pub async fn in_use<'e, E: Executor<'e, Database = Any>>(e: E, id: &str) -> crate::Result<bool> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM subnets WHERE subnetpool_id = $1 LIMIT 1")
            .bind(id)
            .fetch_optional(e)
            .await?;
    Ok(found.is_some())
}

/// The CIDRs of the pool's subnets of one project (what its per-project prefix quota counts:
/// at most that quota's worth of them).
pub async fn cidrs_of_project<'e, E: Executor<'e, Database = Any>>(
    e: E,
    id: &str,
    project_id: &str,
) -> crate::Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT cidr FROM subnets WHERE subnetpool_id = $1 AND project_id = $2")
            .bind(id)
            .bind(project_id)
            .fetch_all(e)
            .await?,
    )
}

/// Deletes a pool (unused: the caller checked under its lock), its free space and its tags.
pub async fn delete(tx: &mut Tx<'_>, id: &str) -> crate::Result<bool> {
    crate::tags::clear(tx, crate::tags::Kind::SubnetPool, id).await?;
    sqlx::query("DELETE FROM subnetpool_free_blocks WHERE subnetpool_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    let done = sqlx::query("DELETE FROM subnetpools WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The subnet pools table as lists see it, by API attribute.
pub static TABLE: Table = Table {
    from: "subnetpools sp",
    id: &COLUMNS[0],
    columns: &COLUMNS,
    visible: "sp.project_id = {} OR sp.shared = 1",
    addresses: false,
    tags: Some(crate::tags::Kind::SubnetPool),
};

static COLUMNS: [Column; 16] = [
    Column::text("id", "sp.id"),
    Column::text("name", "sp.name"),
    Column::text("tenant_id", "sp.project_id"),
    Column::text("project_id", "sp.project_id"),
    Column::text("description", "sp.description"),
    Column::int("ip_version", "sp.ip_version"),
    Column::text("prefixes", "sp.prefixes").json_list(),
    Column::int("default_prefixlen", "sp.default_prefixlen"),
    Column::int("min_prefixlen", "sp.min_prefixlen"),
    Column::int("max_prefixlen", "sp.max_prefixlen"),
    Column::int("default_quota", "sp.default_quota").nullable(),
    Column::flag("shared", "sp.shared"),
    Column::flag("is_default", "sp.is_default"),
    Column::int("revision_number", "sp.revision_number"),
    Column::text("created_at", "sp.created_at"),
    Column::text("updated_at", "sp.updated_at"),
];

/// One page of pools as `req` describes it, each with its key.
pub async fn page(store: &Store, req: &Request) -> crate::Result<Vec<(SubnetPool, Key)>> {
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

// ---------------------------------------------------------------------------------------------
// Free space. Every function below runs under the pool's lock.

fn block_row(row: &AnyRow) -> crate::Result<Block> {
    let first: String = row.try_get("first_ip")?;
    let len: i64 = row.try_get("prefixlen")?;
    match (from_key(&first), u8::try_from(len)) {
        (Some(first), Ok(len)) => Ok(Block { first, len }),
        _ => Err(sqlx::Error::Decode(format!("bad free block {first}/{len}").into()).into()),
    }
}

async fn insert_blocks(tx: &mut Tx<'_>, pool_id: &str, blocks: &[Block]) -> crate::Result<()> {
    let rows: Vec<(String, i64)> = blocks
        .iter()
        .map(|b| (key(b.first), i64::from(b.len)))
        .collect();
    insert_rows(
        tx,
        &rows,
        3,
        |values| {
            format!(
                "INSERT INTO subnetpool_free_blocks (subnetpool_id, first_ip, prefixlen) \
                 VALUES {values}"
            )
        },
        |q, (first, len)| q.bind(pool_id).bind(first.as_str()).bind(*len),
    )
    .await?;
    Ok(())
}

async fn remove_block(tx: &mut Tx<'_>, pool_id: &str, block: Block) -> crate::Result<bool> {
    let done = sqlx::query(
        "DELETE FROM subnetpool_free_blocks \
         WHERE subnetpool_id = $1 AND first_ip = $2 AND prefixlen = $3",
    )
    .bind(pool_id)
    .bind(key(block.first))
    .bind(i64::from(block.len))
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Cuts `taken` out of free `block`: the block goes, what is left of it stays free.
async fn cut(
    tx: &mut Tx<'_>,
    pool_id: &str,
    version: u8,
    block: Block,
    taken: Block,
) -> crate::Result<()> {
    remove_block(tx, pool_id, block).await?;
    insert_blocks(tx, pool_id, &prefixes::split(block, taken, version)).await
}

/// Takes the lowest block of `len` from the best fit: the longest free block not longer than
/// `len` (the smallest that holds it), the lowest of those. None when none is that large.
pub async fn take_any(
    tx: &mut Tx<'_>,
    pool_id: &str,
    version: u8,
    len: u8,
) -> crate::Result<Option<Block>> {
    // Two seeks on the `_fit` index (one ORDER BY of mixed directions could not use it).
    let fit: Option<i64> = sqlx::query_scalar(
        "SELECT prefixlen FROM subnetpool_free_blocks \
         WHERE subnetpool_id = $1 AND prefixlen <= $2 ORDER BY prefixlen DESC LIMIT 1",
    )
    .bind(pool_id)
    .bind(i64::from(len))
    .fetch_optional(&mut **tx)
    .await?;
    let Some(fit) = fit else { return Ok(None) };
    let row = sqlx::query(
        "SELECT first_ip, prefixlen FROM subnetpool_free_blocks \
         WHERE subnetpool_id = $1 AND prefixlen = $2 ORDER BY first_ip LIMIT 1",
    )
    .bind(pool_id)
    .bind(fit)
    .fetch_one(&mut **tx)
    .await?;
    let block = block_row(&row)?;
    let taken = prefixes::lowest(block, len);
    cut(tx, pool_id, version, block, taken).await?;
    Ok(Some(taken))
}

/// Takes exactly `wanted` if it is free (inside one free block); false if any of it is not.
pub async fn take_exact(
    tx: &mut Tx<'_>,
    pool_id: &str,
    version: u8,
    wanted: Block,
) -> crate::Result<bool> {
    let row = sqlx::query(
        "SELECT first_ip, prefixlen FROM subnetpool_free_blocks \
         WHERE subnetpool_id = $1 AND first_ip <= $2 ORDER BY first_ip DESC LIMIT 1",
    )
    .bind(pool_id)
    .bind(key(wanted.first))
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(false) };
    let block = block_row(&row)?;
    if !block.contains(wanted, version) {
        return Ok(false);
    }
    cut(tx, pool_id, version, block, wanted).await?;
    Ok(true)
}

/// Makes `block` (not free, inside the pool's prefixes) free: merged with its buddy as long as
/// the buddy is free, so the space stays the fewest blocks.
pub async fn give_back(
    tx: &mut Tx<'_>,
    pool_id: &str,
    version: u8,
    mut block: Block,
) -> crate::Result<()> {
    while let Some(buddy) = block.buddy(version) {
        if !remove_block(tx, pool_id, buddy).await? {
            break;
        }
        block = block.parent(version);
    }
    insert_blocks(tx, pool_id, std::slice::from_ref(&block)).await
}

/// Adds space that was outside the pool (a new pool's prefixes, or prefixes added later).
pub async fn add_space(
    tx: &mut Tx<'_>,
    pool_id: &str,
    version: u8,
    blocks: &[Block],
) -> crate::Result<()> {
    for block in blocks {
        give_back(tx, pool_id, version, *block).await?;
    }
    Ok(())
}

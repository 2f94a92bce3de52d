//! Networks and their segment (provider attributes).

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::listing::{self, Column, Key, Request, Table};
use super::{Backend, Store, flag, lock_named};

/// A network as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub status: String,
    pub shared: bool,
    pub external: bool,
    pub is_default: bool,
    pub port_security_enabled: bool,
    pub mtu: i64,
    pub network_type: String,
    pub physical_network: Option<String>,
    pub segmentation_id: Option<i64>,
    /// JSON list of strings.
    pub availability_zone_hints: String,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}

/// The columns, as a macro so that queries stay `&'static str` (sqlx refuses built strings).
macro_rules! columns {
    () => {
        "id, project_id, name, description, admin_state_up, status, shared, external, is_default, \
         port_security_enabled, mtu, network_type, physical_network, segmentation_id, availability_zone_hints, \
         created_at, updated_at, revision_number"
    };
}

fn from_row(r: &AnyRow) -> crate::Result<Network> {
    Ok(Network {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        admin_state_up: flag(r, "admin_state_up")?,
        status: r.try_get("status")?,
        shared: flag(r, "shared")?,
        external: flag(r, "external")?,
        is_default: flag(r, "is_default")?,
        port_security_enabled: flag(r, "port_security_enabled")?,
        mtu: r.try_get("mtu")?,
        network_type: r.try_get("network_type")?,
        physical_network: r.try_get("physical_network")?,
        segmentation_id: r.try_get("segmentation_id")?,
        availability_zone_hints: r.try_get("availability_zone_hints")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        revision_number: r.try_get("revision_number")?,
    })
}

/// Why a segment could not be had.
#[derive(Debug)]
pub enum SegmentError {
    /// The requested id is taken.
    InUse,
    /// No free id is left in the range.
    Exhausted,
    Db(crate::Error),
}

impl From<sqlx::Error> for SegmentError {
    fn from(e: sqlx::Error) -> Self {
        crate::Error::from(e).into()
    }
}

impl From<crate::Error> for SegmentError {
    fn from(e: crate::Error) -> Self {
        if e.is_unique_violation() {
            SegmentError::InUse
        } else {
            SegmentError::Db(e)
        }
    }
}

/// Claims a segment id: `requested`, or the lowest free id in `range`.
///
/// Allocations from one pool are serialised: on PostgreSQL by a transaction-scoped advisory
/// lock on the pool (servers sharing the database queue on it instead of racing for the same
/// lowest id); on SQLite by the write transaction itself. A requested id that is taken fails
/// on the primary key. The lowest free id comes from the pool's free ranges (`segment_free`):
/// one indexed row, however many networks there are.
pub async fn allocate_segment(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    network_type: &str,
    physical_network: Option<&str>,
    requested: Option<i64>,
    range: (i64, i64),
    network_id: &str,
) -> Result<i64, SegmentError> {
    let physnet = physical_network.unwrap_or("");
    let id = match requested {
        // Left in the free ranges if it is there: met when it is the lowest, it is skipped.
        Some(id) => id,
        None => {
            lock_named(tx, backend, &format!("segments/{network_type}/{physnet}")).await?;
            take_lowest(tx, network_type, physnet, range)
                .await
                .map_err(SegmentError::Db)?
                .ok_or(SegmentError::Exhausted)?
        }
    };
    claim(tx, network_type, physnet, id, network_id).await?;
    Ok(id)
}

/// Takes the lowest id of the pool's free ranges that no network holds, out of them (the
/// caller holds the pool's lock and claims it). The ranges are built first when the pool has
/// none for `range` (a first allocation, or a server configured with another range): one pass
/// over the pool's allocations.
async fn take_lowest(
    conn: &mut sqlx::AnyConnection,
    network_type: &str,
    physnet: &str,
    range: (i64, i64),
) -> crate::Result<Option<i64>> {
    build_free(conn, network_type, physnet, range).await?;
    loop {
        let lowest: Option<(i64, i64)> = sqlx::query_as(
            "SELECT first_id, last_id FROM segment_free \
             WHERE network_type = $1 AND physical_network = $2 ORDER BY first_id LIMIT 1",
        )
        .bind(network_type)
        .bind(physnet)
        .fetch_optional(&mut *conn)
        .await?;
        let Some((first, last)) = lowest else {
            return Ok(None);
        };
        sqlx::query(
            "DELETE FROM segment_free \
             WHERE network_type = $1 AND physical_network = $2 AND first_id = $3",
        )
        .bind(network_type)
        .bind(physnet)
        .bind(first)
        .execute(&mut *conn)
        .await?;
        if first < last {
            add_free(conn, network_type, physnet, first + 1, last).await?;
        }
        // A requested id, or one a dynamic segment holds, may still be in a range.
        let taken: Option<i64> = sqlx::query_scalar(
            "SELECT segmentation_id FROM segment_allocations \
             WHERE network_type = $1 AND physical_network = $2 AND segmentation_id = $3",
        )
        .bind(network_type)
        .bind(physnet)
        .bind(first)
        .fetch_optional(&mut *conn)
        .await?;
        if taken.is_none() && (range.0..=range.1).contains(&first) {
            return Ok(Some(first));
        }
    }
}

/// Merges `first..=last` into the pool's free ranges: a range that starts at `first` already
/// keeps the longer end (a release racing a rebuild or a take never loses a free id).
const ADD_FREE: &str = "ON CONFLICT (network_type, physical_network, first_id) DO UPDATE \
     SET last_id = CASE WHEN excluded.last_id > segment_free.last_id \
         THEN excluded.last_id ELSE segment_free.last_id END";

async fn add_free(
    conn: &mut sqlx::AnyConnection,
    network_type: &str,
    physnet: &str,
    first: i64,
    last: i64,
) -> crate::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO segment_free (network_type, physical_network, first_id, last_id) \
         VALUES ($1, $2, $3, $4) {ADD_FREE}"
    )))
    .bind(network_type)
    .bind(physnet)
    .bind(first)
    .bind(last)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Builds the pool's free ranges from its allocations when they were built for another range
/// (or never): the gaps between the allocated ids of `low..=high`.
async fn build_free(
    conn: &mut sqlx::AnyConnection,
    network_type: &str,
    physnet: &str,
    (low, high): (i64, i64),
) -> crate::Result<()> {
    let built: Option<(i64, i64)> = sqlx::query_as(
        "SELECT range_low, range_high FROM segment_pools \
         WHERE network_type = $1 AND physical_network = $2",
    )
    .bind(network_type)
    .bind(physnet)
    .fetch_optional(&mut *conn)
    .await?;
    if built == Some((low, high)) {
        return Ok(());
    }
    for table in ["segment_free", "segment_pools"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE network_type = $1 AND physical_network = $2"
        )))
        .bind(network_type)
        .bind(physnet)
        .execute(&mut *conn)
        .await?;
    }
    let taken: Vec<i64> = sqlx::query_scalar(
        "SELECT segmentation_id FROM segment_allocations \
         WHERE network_type = $1 AND physical_network = $2 \
           AND segmentation_id >= $3 AND segmentation_id <= $4 ORDER BY segmentation_id",
    )
    .bind(network_type)
    .bind(physnet)
    .bind(low)
    .bind(high)
    .fetch_all(&mut *conn)
    .await?;
    let gaps = free_gaps(&taken, (low, high));
    crate::insert_rows(
        conn,
        &gaps,
        4,
        |rows| {
            format!(
                "INSERT INTO segment_free (network_type, physical_network, first_id, last_id) \
                 VALUES {rows} {ADD_FREE}"
            )
        },
        |q, (first, last)| q.bind(network_type).bind(physnet).bind(*first).bind(*last),
    )
    .await?;
    sqlx::query(
        "INSERT INTO segment_pools (network_type, physical_network, range_low, range_high) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(network_type)
    .bind(physnet)
    .bind(low)
    .bind(high)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The ranges of `low..=high` not in `taken` (sorted ids).
fn free_gaps(taken: &[i64], (low, high): (i64, i64)) -> Vec<(i64, i64)> {
    let mut gaps = Vec::new();
    let mut next = low;
    for &id in taken {
        if id > next {
            gaps.push((next, id - 1));
        }
        next = next.max(id + 1);
    }
    if next <= high {
        gaps.push((next, high));
    }
    gaps
}

/// Gives released ids back to their pools' free ranges (those within the range the ranges
/// were built for), so that they are allocated again, lowest first. Takes no lock: a release
/// only adds to the ranges.
pub(crate) async fn release_ids(
    conn: &mut sqlx::AnyConnection,
    released: &[(String, String, i64)],
) -> crate::Result<()> {
    for (network_type, physnet, id) in released {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO segment_free (network_type, physical_network, first_id, last_id) \
             SELECT network_type, physical_network, $3, $3 FROM segment_pools \
             WHERE network_type = $1 AND physical_network = $2 \
               AND range_low <= $3 AND range_high >= $3 {ADD_FREE}"
        )))
        .bind(network_type)
        .bind(physnet)
        .bind(*id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Deletes the allocations `sql` (a `DELETE ... RETURNING network_type, physical_network,
/// segmentation_id` of `segment_allocations` with `$1`) names, and releases their ids.
pub(crate) async fn delete_allocations(
    conn: &mut sqlx::AnyConnection,
    sql: &'static str,
    bind: &str,
) -> crate::Result<()> {
    let released: Vec<(String, String, i64)> =
        sqlx::query_as(sql).bind(bind).fetch_all(&mut *conn).await?;
    release_ids(conn, &released).await
}

async fn claim(
    tx: &mut Transaction<'_, Any>,
    network_type: &str,
    physnet: &str,
    id: i64,
    network_id: &str,
) -> crate::Result<()> {
    sqlx::query(
        "INSERT INTO segment_allocations (network_type, physical_network, segmentation_id, network_id) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(network_type)
    .bind(physnet)
    .bind(id)
    .bind(network_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The lowest id of `range` not allocated: the start if free, else the first gap after an
/// allocated id (found by the database through the index, not by scanning ids here).
pub(crate) async fn lowest_free(
    conn: &mut sqlx::AnyConnection,
    network_type: &str,
    physnet: &str,
    (low, high): (i64, i64),
) -> Result<Option<i64>, sqlx::Error> {
    let start_taken: Option<i64> = sqlx::query_scalar(
        "SELECT segmentation_id FROM segment_allocations \
         WHERE network_type = $1 AND physical_network = $2 AND segmentation_id = $3",
    )
    .bind(network_type)
    .bind(physnet)
    .bind(low)
    .fetch_optional(&mut *conn)
    .await?;
    if start_taken.is_none() {
        return Ok(Some(low));
    }
    let gap: Option<i64> = sqlx::query_scalar(
        // In id order, stopping at the first gap: `MIN(...)` over the same condition made
        // SQLite test every allocated id of the range.
        "SELECT a.segmentation_id + 1 FROM segment_allocations a \
         WHERE a.network_type = $1 AND a.physical_network = $2 \
           AND a.segmentation_id >= $3 AND a.segmentation_id < $4 \
           AND NOT EXISTS (SELECT 1 FROM segment_allocations b WHERE b.network_type = $1 \
               AND b.physical_network = $2 AND b.segmentation_id = a.segmentation_id + 1) \
         ORDER BY a.segmentation_id LIMIT 1",
    )
    .bind(network_type)
    .bind(physnet)
    .bind(low)
    .bind(high)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(gap.filter(|g| *g <= high))
}

pub async fn insert(tx: &mut Transaction<'_, Any>, n: &Network) -> crate::Result<()> {
    sqlx::query(concat!(
        "INSERT INTO networks (",
        columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
    ))
    .bind(&n.id)
    .bind(&n.project_id)
    .bind(&n.name)
    .bind(&n.description)
    .bind(i64::from(n.admin_state_up))
    .bind(&n.status)
    .bind(i64::from(n.shared))
    .bind(i64::from(n.external))
    .bind(i64::from(n.is_default))
    .bind(i64::from(n.port_security_enabled))
    .bind(n.mtu)
    .bind(&n.network_type)
    .bind(&n.physical_network)
    .bind(n.segmentation_id)
    .bind(&n.availability_zone_hints)
    .bind(&n.created_at)
    .bind(&n.updated_at)
    .bind(n.revision_number)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes the mutable attributes and bumps the revision.
pub async fn update(tx: &mut Transaction<'_, Any>, n: &Network) -> crate::Result<()> {
    sqlx::query(
        "UPDATE networks SET name = $2, description = $3, admin_state_up = $4, shared = $5, external = $6, \
         is_default = $7, port_security_enabled = $8, mtu = $9, updated_at = $10, revision_number = $11 WHERE id = $1",
    )
    .bind(&n.id)
    .bind(&n.name)
    .bind(&n.description)
    .bind(i64::from(n.admin_state_up))
    .bind(i64::from(n.shared))
    .bind(i64::from(n.external))
    .bind(i64::from(n.is_default))
    .bind(i64::from(n.port_security_enabled))
    .bind(n.mtu)
    .bind(&n.updated_at)
    .bind(n.revision_number)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get<'e, E: sqlx::Executor<'e, Database = Any>>(
    e: E,
    id: &str,
) -> crate::Result<Option<Network>> {
    sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM networks WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(|r| from_row(&r))
    .transpose()
}

/// The networks of `ids` that exist, in as few statements as the backend allows.
pub async fn get_many(
    conn: &mut sqlx::AnyConnection,
    ids: &[String],
) -> crate::Result<Vec<Network>> {
    let mut found = Vec::with_capacity(ids.len());
    for (chunk, rows) in crate::value_chunks(Backend::of(conn), ids, 1, 0) {
        let sql = format!(
            concat!(
                "SELECT ",
                columns!(),
                " FROM networks WHERE id IN (VALUES {rows})"
            ),
            rows = rows
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            found.push(from_row(&row)?);
        }
    }
    Ok(found)
}

/// The networks table as lists see it, by API attribute.
pub static TABLE: Table = Table {
    from: "networks n",
    id: &COLUMNS[0],
    columns: &COLUMNS,
    visible: "n.project_id = {} OR n.shared = 1 OR n.external = 1",
    addresses: false,
    tags: Some(crate::tags::Kind::Network),
};

static COLUMNS: [Column; 18] = [
    Column::text("id", "n.id"),
    Column::text("name", "n.name"),
    Column::text("tenant_id", "n.project_id"),
    Column::text("project_id", "n.project_id"),
    Column::flag("admin_state_up", "n.admin_state_up"),
    Column::text("status", "n.status"),
    Column::flag("shared", "n.shared"),
    Column::flag("router:external", "n.external"),
    Column::int("mtu", "n.mtu"),
    Column::flag("port_security_enabled", "n.port_security_enabled"),
    Column::text("provider:network_type", "n.network_type"),
    Column::text("provider:physical_network", "n.physical_network").nullable(),
    Column::int("provider:segmentation_id", "n.segmentation_id").nullable(),
    Column::flag("is_default", "n.is_default"),
    Column::text("description", "n.description"),
    Column::int("revision_number", "n.revision_number"),
    Column::text("created_at", "n.created_at"),
    Column::text("updated_at", "n.updated_at"),
];

/// One page of networks as `req` describes it, each with its key.
pub async fn page(store: &Store, req: &Request) -> crate::Result<Vec<(Network, Key)>> {
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

pub async fn delete(tx: &mut Transaction<'_, Any>, id: &str) -> crate::Result<bool> {
    crate::tags::clear(tx, crate::tags::Kind::Network, id).await?;
    delete_allocations(
        tx,
        "DELETE FROM segment_allocations WHERE network_id = $1 \
         RETURNING network_type, physical_network, segmentation_id",
        id,
    )
    .await?;
    let done = sqlx::query("DELETE FROM networks WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::free_gaps;

    #[test]
    fn free_gaps_are_the_ids_between_allocations() {
        assert_eq!(free_gaps(&[], (1, 16_777_215)), vec![(1, 16_777_215)]);
        assert_eq!(free_gaps(&[1, 2, 3], (1, 3)), vec![]);
        assert_eq!(
            free_gaps(&[1, 2, 5, 9], (1, 10)),
            vec![(3, 4), (6, 8), (10, 10)]
        );
        assert_eq!(free_gaps(&[10], (1, 10)), vec![(1, 9)]);
    }
}

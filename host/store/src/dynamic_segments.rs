//! Dynamic segments (Neutron's `allocate_dynamic_segment` / `release_dynamic_segment`): the
//! segments the host issues to a network for hierarchical bindings, one per network, type and
//! physical network, each holding its segmentation id in `segment_allocations`; which ports'
//! bindings use them; and their release when no port does.
//!
//! A binding proposes segments from a snapshot ([`on_network`], [`lowest_free`]) outside any
//! transaction; [`record_binding`] writes them with the binding and fails on a unique key when
//! another binding took the same id or place meanwhile (the caller binds again).

use sqlx::{Any, AnyConnection, Row, Transaction};

/// A dynamic segment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicSegment {
    pub id: String,
    pub network_id: String,
    pub network_type: String,
    /// Empty for types with no physical network.
    pub physical_network: String,
    pub segmentation_id: i64,
    pub mtu: i64,
}

/// The network's dynamic segments.
pub async fn on_network(
    conn: &mut AnyConnection,
    network_id: &str,
) -> crate::Result<Vec<DynamicSegment>> {
    let rows = sqlx::query(
        "SELECT id, network_id, network_type, physical_network, segmentation_id, mtu \
         FROM dynamic_segments WHERE network_id = $1 ORDER BY created_at, id",
    )
    .bind(network_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DynamicSegment {
                id: r.try_get("id")?,
                network_id: r.try_get("network_id")?,
                network_type: r.try_get("network_type")?,
                physical_network: r.try_get("physical_network")?,
                segmentation_id: r.try_get("segmentation_id")?,
                mtu: r.try_get("mtu")?,
            })
        })
        .collect()
}

/// The lowest segmentation id of `range` no network holds on that type and physical network
/// (a proposal: [`record_binding`] claims it).
pub async fn lowest_free(
    conn: &mut AnyConnection,
    network_type: &str,
    physical_network: &str,
    range: (i64, i64),
) -> crate::Result<Option<i64>> {
    Ok(super::networks::lowest_free(conn, network_type, physical_network, range).await?)
}

/// Records that `port_id`'s binding uses exactly `used` (dynamic segments of `network_id`):
/// segments not stored yet are claimed and written, the port's other references dropped, and
/// the network's segments no port uses any more released. False (nothing written) when another
/// binding took an id or a place meanwhile, or a segment is not what was read: the caller binds
/// again.
pub async fn record_binding(
    conn: &mut AnyConnection,
    port_id: &str,
    network_id: &str,
    used: &[DynamicSegment],
) -> crate::Result<bool> {
    let stored = on_network(&mut *conn, network_id).await?;
    let mut new = Vec::new();
    for s in used {
        match stored.iter().find(|k| k.id == s.id) {
            Some(known) if known != s => return Ok(false),
            Some(_) => {}
            None => new.push(s),
        }
    }
    if !new.is_empty() {
        // Under a savepoint: a unique violation (taken meanwhile) leaves the caller's
        // transaction usable on PostgreSQL.
        let mut sp = sqlx::Acquire::begin(&mut *conn).await?;
        match claim(&mut sp, network_id, &new).await {
            Ok(()) => crate::commit(sp).await?,
            Err(e) if e.is_unique_violation() => {
                crate::rollback(sp).await?;
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
    }
    let had = sqlx::query("DELETE FROM port_dynamic_segments WHERE port_id = $1")
        .bind(port_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    for s in used {
        sqlx::query("INSERT INTO port_dynamic_segments (port_id, segment_id) VALUES ($1, $2)")
            .bind(port_id)
            .bind(&s.id)
            .execute(&mut *conn)
            .await?;
    }
    if had > 0 {
        release_unused(conn, network_id).await?;
    }
    Ok(true)
}

async fn claim(
    tx: &mut Transaction<'_, Any>,
    network_id: &str,
    new: &[&DynamicSegment],
) -> crate::Result<()> {
    for s in new {
        sqlx::query(
            "INSERT INTO segment_allocations \
             (network_type, physical_network, segmentation_id, network_id) VALUES ($1, $2, $3, $4)",
        )
        .bind(&s.network_type)
        .bind(&s.physical_network)
        .bind(s.segmentation_id)
        .bind(network_id)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO dynamic_segments \
             (id, network_id, network_type, physical_network, segmentation_id, mtu, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&s.id)
        .bind(network_id)
        .bind(&s.network_type)
        .bind(&s.physical_network)
        .bind(s.segmentation_id)
        .bind(s.mtu)
        .bind(crate::now())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Drops `port_id`'s references (its binding is gone or about to be) and releases the
/// segments of its network no port uses any more.
pub async fn forget_port(conn: &mut AnyConnection, port_id: &str) -> crate::Result<()> {
    let networks: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT d.network_id FROM port_dynamic_segments r \
         JOIN dynamic_segments d ON d.id = r.segment_id WHERE r.port_id = $1",
    )
    .bind(port_id)
    .fetch_all(&mut *conn)
    .await?;
    if networks.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM port_dynamic_segments WHERE port_id = $1")
        .bind(port_id)
        .execute(&mut *conn)
        .await?;
    for network_id in &networks {
        release_unused(conn, network_id).await?;
    }
    Ok(())
}

/// Releases the network's dynamic segments no port's binding uses: the segment and its
/// segmentation id.
pub async fn release_unused(conn: &mut AnyConnection, network_id: &str) -> crate::Result<()> {
    // Their ids go back to the pools' free ranges (`networks::release_ids`).
    super::networks::delete_allocations(
        conn,
        "DELETE FROM segment_allocations WHERE network_id = $1 AND EXISTS ( \
             SELECT 1 FROM dynamic_segments d WHERE d.network_id = $1 \
               AND d.network_type = segment_allocations.network_type \
               AND d.physical_network = segment_allocations.physical_network \
               AND d.segmentation_id = segment_allocations.segmentation_id \
               AND NOT EXISTS (SELECT 1 FROM port_dynamic_segments r WHERE r.segment_id = d.id)) \
         RETURNING network_type, physical_network, segmentation_id",
        network_id,
    )
    .await?;
    sqlx::query(
        "DELETE FROM dynamic_segments WHERE network_id = $1 AND NOT EXISTS ( \
             SELECT 1 FROM port_dynamic_segments r WHERE r.segment_id = dynamic_segments.id)",
    )
    .bind(network_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

//! Tags (`standard-attr-tag`): one table of (resource type, resource id, tag) for every
//! taggable resource. A tag change also counts as a change of its resource (its revision and
//! `updated_at` move, as Neutron's `Tag.revises_on_change`), so the writes here take the
//! caller's transaction and touch the resource's row too.

use std::collections::HashMap;

use sqlx::{Any, Transaction};

use super::{Backend, Store};

/// A resource that carries tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Network,
    Subnet,
    Port,
    SecurityGroup,
    SubnetPool,
    Router,
    FloatingIp,
}

impl Kind {
    /// The `resource_type` stored, which is also the resource's table (Neutron's parent
    /// collection name, as in its `TagResourceNotFound` message).
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Network => "networks",
            Kind::Subnet => "subnets",
            Kind::Port => "ports",
            Kind::SecurityGroup => "security_groups",
            Kind::SubnetPool => "subnetpools",
            Kind::Router => "routers",
            Kind::FloatingIp => "floatingips",
        }
    }
}

/// Text bytewise, as lists sort it (see `listing`).
fn bytewise(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " COLLATE \"C\"",
        Backend::Sqlite => "",
    }
}

/// A resource's tags, sorted (Neutron reads them in its primary key's order, by tag).
pub async fn of(conn: &mut super::Conn, kind: Kind, id: &str) -> crate::Result<Vec<String>> {
    let sql = format!(
        "SELECT tag FROM tags WHERE resource_type = $1 AND resource_id = $2 ORDER BY tag{}",
        bytewise(Backend::of(conn))
    );
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(kind.name())
        .bind(id)
        .fetch_all(&mut *conn)
        .await?)
}

/// The tags of several resources (a list's page), each sorted; resources without tags are
/// absent from the map.
pub async fn of_many(
    store: &Store,
    kind: Kind,
    ids: &[String],
) -> crate::Result<HashMap<String, Vec<String>>> {
    let mut found: HashMap<String, Vec<String>> = HashMap::new();
    // One parameter is taken by the resource type.
    for (chunk, rows) in crate::value_chunks(store.backend, ids, 1, 1) {
        let sql = format!(
            "SELECT resource_id, tag FROM tags WHERE resource_type = $1 \
             AND resource_id IN (VALUES {rows}) ORDER BY resource_id, tag{}",
            bytewise(store.backend)
        );
        let mut query =
            sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql)).bind(kind.name());
        for id in chunk {
            query = query.bind(id);
        }
        for (id, tag) in query.fetch_all(&store.read).await? {
            found.entry(id).or_default().push(tag);
        }
    }
    Ok(found)
}

/// Adds the tags the resource lacks; answers how many were added.
pub async fn add(
    tx: &mut Transaction<'_, Any>,
    kind: Kind,
    id: &str,
    tags: &[String],
) -> crate::Result<u64> {
    let mut added = 0;
    for tag in tags {
        added += sqlx::query(
            "INSERT INTO tags (resource_type, resource_id, tag) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(kind.name())
        .bind(id)
        .bind(tag)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    Ok(added)
}

/// Removes these tags of the resource; answers how many it had.
pub async fn remove(
    tx: &mut Transaction<'_, Any>,
    kind: Kind,
    id: &str,
    tags: &[String],
) -> crate::Result<u64> {
    let mut removed = 0;
    for tag in tags {
        removed += sqlx::query(
            "DELETE FROM tags WHERE resource_type = $1 AND resource_id = $2 AND tag = $3",
        )
        .bind(kind.name())
        .bind(id)
        .bind(tag)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    Ok(removed)
}

/// Removes every tag of the resource (when it is untagged, or deleted); answers how many.
pub async fn clear(tx: &mut Transaction<'_, Any>, kind: Kind, id: &str) -> crate::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM tags WHERE resource_type = $1 AND resource_id = $2")
            .bind(kind.name())
            .bind(id)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
    )
}

/// Counts a tag change as a change of the resource: its revision and `updated_at` move.
/// False when the resource is gone.
pub async fn touch(tx: &mut Transaction<'_, Any>, kind: Kind, id: &str) -> crate::Result<bool> {
    // The table name comes from the closed set of kinds, never from a request.
    let sql = format!(
        "UPDATE {} SET revision_number = revision_number + 1, updated_at = $2 WHERE id = $1",
        kind.name()
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(crate::now())
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

//! Auto-allocated topologies (`auto_allocated_topologies`, one per project), and the networks
//! Nova may pick for a boot that names none.

use sqlx::{Any, AnyConnection, Executor};

use super::Tx;

/// A project's topology: its network and router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub project_id: String,
    pub network_id: String,
    pub router_id: Option<String>,
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    e: E,
    project_id: &str,
) -> crate::Result<Option<Topology>> {
    let row: Option<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT project_id, network_id, router_id FROM auto_allocated_topologies \
         WHERE project_id = $1",
    )
    .bind(project_id)
    .fetch_optional(e)
    .await?;
    Ok(row.map(|(project_id, network_id, router_id)| Topology {
        project_id,
        network_id,
        router_id,
    }))
}

/// Records the project's topology unless one is recorded already (another request won the
/// race): answers whether this one was recorded.
pub async fn insert_if_absent(tx: &mut Tx<'_>, t: &Topology) -> crate::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO auto_allocated_topologies (project_id, network_id, router_id) \
         VALUES ($1, $2, $3) ON CONFLICT (project_id) DO NOTHING",
    )
    .bind(&t.project_id)
    .bind(&t.network_id)
    .bind(&t.router_id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete(tx: &mut Tx<'_>, project_id: &str) -> crate::Result<()> {
    sqlx::query("DELETE FROM auto_allocated_topologies WHERE project_id = $1")
        .bind(project_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The default external network (`is_default`); the oldest when there are several.
pub async fn default_external_network(conn: &mut AnyConnection) -> crate::Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM networks WHERE external = 1 AND is_default = 1 \
         ORDER BY created_at, id LIMIT 1",
    )
    .fetch_optional(conn)
    .await?)
}

/// The networks Nova offers a boot that names none (`_get_available_networks`): the project's
/// own unshared networks (with `only_up`, those administratively up: a half-made
/// auto-allocated network is not one) and every shared network; at most `limit`.
pub async fn available_networks(
    conn: &mut AnyConnection,
    project_id: &str,
    only_up: bool,
    limit: i64,
) -> crate::Result<Vec<String>> {
    // Two indexed halves (the project's networks, the shared ones: migration 0024) rather
    // than one OR that reads every network.
    Ok(sqlx::query_scalar(
        "SELECT id FROM (SELECT id, created_at FROM networks WHERE project_id = $1 \
         AND shared = 0 AND (admin_state_up = 1 OR $2 = 0) \
         UNION ALL SELECT id, created_at FROM networks WHERE shared = 1) AS available \
         ORDER BY created_at, id LIMIT $3",
    )
    .bind(project_id)
    .bind(i64::from(only_up))
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

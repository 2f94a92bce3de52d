//! Quotas: the limits an admin set per project and resource (a resource without a row has its
//! default, which the caller knows), and the usage they are checked against, counted from the
//! resources' own tables through their project indexes.

use sqlx::{Any, Executor, Row, Transaction};

/// The limits set for `project`, as (resource, limit).
pub async fn overrides<'e, E: Executor<'e, Database = Any>>(
    e: E,
    project: &str,
) -> crate::Result<Vec<(String, i64)>> {
    let rows = sqlx::query(
        "SELECT resource, hard_limit FROM quotas WHERE project_id = $1 ORDER BY resource",
    )
    .bind(project)
    .fetch_all(e)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("resource")?, r.try_get("hard_limit")?)))
        .collect()
}

/// The limit set for `project` and `resource`, if one is.
pub async fn limit<'e, E: Executor<'e, Database = Any>>(
    e: E,
    project: &str,
    resource: &str,
) -> crate::Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT hard_limit FROM quotas WHERE project_id = $1 AND resource = $2")
            .bind(project)
            .bind(resource)
            .fetch_optional(e)
            .await?,
    )
}

/// Every limit set, as (project, resource, limit), by project.
pub async fn all_overrides<'e, E: Executor<'e, Database = Any>>(
    e: E,
) -> crate::Result<Vec<(String, String, i64)>> {
    let rows = sqlx::query(
        "SELECT project_id, resource, hard_limit FROM quotas ORDER BY project_id, resource",
    )
    .fetch_all(e)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("project_id")?,
                r.try_get("resource")?,
                r.try_get("hard_limit")?,
            ))
        })
        .collect()
}

/// Sets `project`'s limit of `resource`.
pub async fn set(
    tx: &mut Transaction<'_, Any>,
    project: &str,
    resource: &str,
    limit: i64,
) -> crate::Result<()> {
    sqlx::query(
        "INSERT INTO quotas (project_id, resource, hard_limit) VALUES ($1, $2, $3) \
         ON CONFLICT (project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit",
    )
    .bind(project)
    .bind(resource)
    .bind(limit)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Removes every limit set for `project` (back to the defaults); answers how many there were.
pub async fn delete(tx: &mut Transaction<'_, Any>, project: &str) -> crate::Result<u64> {
    Ok(sqlx::query("DELETE FROM quotas WHERE project_id = $1")
        .bind(project)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

/// How many `resource`s `project` has, counting at most `bound` of them (a check against a
/// limit need not count past it: the cost is that of the limit, not of the project's size).
/// Ports the server makes for the network itself (`device_owner` `network:*`: DHCP, router
/// interfaces) are not counted. Resources this server does not keep have none.
pub async fn count<'e, E: Executor<'e, Database = Any>>(
    e: E,
    resource: &str,
    project: &str,
    bound: Option<i64>,
) -> crate::Result<i64> {
    let rows = match resource {
        "network" => "SELECT 1 FROM networks WHERE project_id = $1",
        "subnet" => "SELECT 1 FROM subnets WHERE project_id = $1",
        "subnetpool" => "SELECT 1 FROM subnetpools WHERE project_id = $1",
        "port" => "SELECT 1 FROM ports WHERE project_id = $1 AND device_owner NOT LIKE 'network:%'",
        "router" => "SELECT 1 FROM routers WHERE project_id = $1",
        "floatingip" => "SELECT 1 FROM floatingips WHERE project_id = $1",
        "security_group" => "SELECT 1 FROM security_groups WHERE project_id = $1",
        "security_group_rule" => "SELECT 1 FROM security_group_rules WHERE project_id = $1",
        _ => return Ok(0),
    };
    let sql = format!("SELECT COUNT(*) AS n FROM ({rows} LIMIT $2) AS counted");
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(project)
        .bind(bound.unwrap_or(i64::MAX))
        .fetch_one(e)
        .await?;
    Ok(n)
}

//! Security groups: so far only each project's `default` group, made on first use, which ports
//! get when they name no group.

use sqlx::{Any, Executor, Transaction};

/// The id of `project`'s default group, creating it if the project has none yet. Two creators
/// racing (two servers on PostgreSQL) end with one group: the loser's row is dropped.
pub async fn default_for(tx: &mut Transaction<'_, Any>, project: &str) -> crate::Result<String> {
    if let Some(id) = find_default(&mut **tx, project).await? {
        return Ok(id);
    }
    let now = super::now();
    let id = crate::new_id();
    sqlx::query(
        "INSERT INTO security_groups (id, project_id, name, description, created_at, updated_at, \
         revision_number) VALUES ($1, $2, 'default', 'Default security group', $3, $3, 0)",
    )
    .bind(&id)
    .bind(project)
    .bind(&now)
    .execute(&mut **tx)
    .await?;
    let won = sqlx::query(
        "INSERT INTO default_security_groups (project_id, security_group_id) VALUES ($1, $2) \
         ON CONFLICT DO NOTHING",
    )
    .bind(project)
    .bind(&id)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if won {
        return Ok(id);
    }
    sqlx::query("DELETE FROM security_groups WHERE id = $1")
        .bind(&id)
        .execute(&mut **tx)
        .await?;
    Ok(find_default(&mut **tx, project).await?.unwrap_or(id))
}

/// The id of `project`'s default group, if it has one yet.
pub async fn find_default<'e, E: Executor<'e, Database = Any>>(
    e: E,
    project: &str,
) -> crate::Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT security_group_id FROM default_security_groups WHERE project_id = $1",
    )
    .bind(project)
    .fetch_optional(e)
    .await?)
}

/// Those of `ids` that exist and `project` may use (None: any project's).
pub async fn usable(
    conn: &mut sqlx::AnyConnection,
    ids: &[String],
    project: Option<&str>,
) -> crate::Result<Vec<String>> {
    let mut found = Vec::new();
    for id in ids {
        let owner: Option<String> =
            sqlx::query_scalar("SELECT project_id FROM security_groups WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        if owner.is_some_and(|o| project.is_none_or(|p| p == o)) {
            found.push(id.clone());
        }
    }
    Ok(found)
}

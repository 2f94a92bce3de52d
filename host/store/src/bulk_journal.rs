//! The journal of bulk creates written in slices (see `neutrino_core::bulk`): the items a
//! bulk has made, recorded in the transaction that made them, so that a bulk cut short by a
//! killed server is undone by the next sweep.

use sqlx::AnyConnection;

/// Records `ids` (of `resource`: `networks` or `ports`) as made by bulk `bulk_id`.
pub async fn record(
    conn: &mut AnyConnection,
    bulk_id: &str,
    resource: &str,
    ids: &[String],
) -> crate::Result<()> {
    let now = crate::now();
    crate::insert_rows(
        conn,
        ids,
        4,
        |rows| {
            format!(
                "INSERT INTO bulk_journal (bulk_id, resource, item_id, created_at) VALUES {rows}"
            )
        },
        |q, id| {
            q.bind(bulk_id)
                .bind(resource)
                .bind(id.as_str())
                .bind(now.as_str())
        },
    )
    .await?;
    Ok(())
}

/// Forgets bulk `bulk_id`: it ended, all made or all undone.
pub async fn forget(conn: &mut AnyConnection, bulk_id: &str) -> crate::Result<()> {
    sqlx::query("DELETE FROM bulk_journal WHERE bulk_id = $1")
        .bind(bulk_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Forgets the items of bulk `bulk_id` but `kept` (those undone; `kept` could not be).
pub async fn forget_except(
    conn: &mut AnyConnection,
    bulk_id: &str,
    kept: &[&str],
) -> crate::Result<()> {
    let kept = serde_json::to_string(kept).unwrap_or_default();
    let sql = match crate::Backend::of(conn) {
        crate::Backend::Sqlite => {
            "DELETE FROM bulk_journal WHERE bulk_id = $1 \
             AND item_id NOT IN (SELECT value FROM json_each($2))"
        }
        crate::Backend::Postgres => {
            "DELETE FROM bulk_journal WHERE bulk_id = $1 \
             AND item_id NOT IN (SELECT json_array_elements_text($2::json))"
        }
    };
    sqlx::query(sql)
        .bind(bulk_id)
        .bind(kept)
        .execute(conn)
        .await?;
    Ok(())
}

/// The bulks whose last slice was recorded before `before` (timestamps as [`crate::now`]
/// writes them): those a server did not finish. Their items as (bulk id, resource, item id).
pub async fn unfinished(
    conn: &mut AnyConnection,
    before: &str,
) -> crate::Result<Vec<(String, String, String)>> {
    Ok(sqlx::query_as(
        "SELECT bulk_id, resource, item_id FROM bulk_journal WHERE bulk_id IN \
         (SELECT bulk_id FROM bulk_journal GROUP BY bulk_id HAVING MAX(created_at) < $1) \
         ORDER BY bulk_id",
    )
    .bind(before)
    .fetch_all(conn)
    .await?)
}

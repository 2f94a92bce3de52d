//! Agent credentials: one per host, for the agents' internal API. The store keeps only the
//! SHA-256 (hex) of each token; the caller makes the token and hashes it.

use sqlx::{Any, Executor};

/// Sets `host`'s credential to the token whose digest is `token_sha256`, replacing the one it
/// had (enrolling a host again makes its old token useless).
pub async fn enroll<'e, E: Executor<'e, Database = Any>>(
    e: E,
    host: &str,
    token_sha256: &str,
) -> crate::Result<()> {
    sqlx::query(
        "INSERT INTO agent_credentials (host, token_sha256, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (host) DO UPDATE SET token_sha256 = excluded.token_sha256, \
         created_at = excluded.created_at",
    )
    .bind(host)
    .bind(token_sha256)
    .bind(crate::now())
    .execute(e)
    .await?;
    Ok(())
}

/// Removes `host`'s credential; answers whether it had one.
pub async fn revoke<'e, E: Executor<'e, Database = Any>>(e: E, host: &str) -> crate::Result<bool> {
    Ok(sqlx::query("DELETE FROM agent_credentials WHERE host = $1")
        .bind(host)
        .execute(e)
        .await?
        .rows_affected()
        > 0)
}

/// The host whose credential has this digest, if any.
pub async fn host_of<'e, E: Executor<'e, Database = Any>>(
    e: E,
    token_sha256: &str,
) -> crate::Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT host FROM agent_credentials WHERE token_sha256 = $1")
            .bind(token_sha256)
            .fetch_optional(e)
            .await?,
    )
}

/// The enrolled hosts with the time each was enrolled, by host.
pub async fn list<'e, E: Executor<'e, Database = Any>>(
    e: E,
) -> crate::Result<Vec<(String, String)>> {
    Ok(
        sqlx::query_as("SELECT host, created_at FROM agent_credentials ORDER BY host")
            .fetch_all(e)
            .await?,
    )
}

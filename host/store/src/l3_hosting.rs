//! What an L3 agent's host must know of the routers it serves (read by the host feed), and the
//! floating IP statuses its agent reports. The routers API writes these tables; this module
//! only reads them, and writes the statuses the agents report.

use sqlx::{AnyConnection, Row as _};

/// A router as its host needs it (its ports and floating IPs are read apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedRouter {
    pub id: String,
    pub admin_state_up: bool,
    pub gw_port_id: Option<String>,
    pub enable_snat: bool,
    /// JSON list of {"destination", "nexthop"}.
    pub routes: String,
}

/// A floating IP associated through a router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterFloatingIp {
    pub id: String,
    pub floating_ip_address: String,
    pub fixed_ip_address: String,
    pub status: String,
}

/// The router, when `host` serves it.
pub async fn hosted_router(
    conn: &mut AnyConnection,
    router_id: &str,
    host: &str,
) -> crate::Result<Option<HostedRouter>> {
    let row = sqlx::query(
        "SELECT r.id, r.admin_state_up, r.gw_port_id, r.enable_snat, r.routes FROM routers r \
         JOIN router_hosting h ON h.router_id = r.id WHERE r.id = $1 AND h.host = $2",
    )
    .bind(router_id)
    .bind(host)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(HostedRouter {
        id: row.try_get("id")?,
        admin_state_up: row.try_get::<i64, _>("admin_state_up")? != 0,
        gw_port_id: row.try_get("gw_port_id")?,
        enable_snat: row.try_get::<i64, _>("enable_snat")? != 0,
        routes: row.try_get("routes")?,
    }))
}

/// The floating IPs associated through the router.
pub async fn floating_ips_of(
    conn: &mut AnyConnection,
    router_id: &str,
) -> crate::Result<Vec<RouterFloatingIp>> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT id, floating_ip_address, fixed_ip_address, status FROM floatingips \
         WHERE router_id = $1 AND fixed_port_id IS NOT NULL AND fixed_ip_address IS NOT NULL \
         ORDER BY floating_ip_address",
    )
    .bind(router_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, floating_ip_address, fixed_ip_address, status)| RouterFloatingIp {
                id,
                floating_ip_address,
                fixed_ip_address,
                status,
            },
        )
        .collect())
}

/// Sets the floating IP's status when it is associated through a router `host` serves and its
/// status differs (its revision bumped). Returns whether it is such a floating IP: false for
/// one gone, disassociated, or served elsewhere (a late report is ignored).
pub async fn report_status(
    tx: &mut AnyConnection,
    host: &str,
    id: &str,
    status: &str,
    now: &str,
) -> crate::Result<bool> {
    let served: Option<String> = sqlx::query_scalar(
        "SELECT f.status FROM floatingips f JOIN router_hosting h ON h.router_id = f.router_id \
         WHERE f.id = $1 AND h.host = $2 AND f.fixed_port_id IS NOT NULL",
    )
    .bind(id)
    .bind(host)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(current) = served else {
        return Ok(false);
    };
    if current != status {
        sqlx::query(
            "UPDATE floatingips SET status = $1, updated_at = $2, \
             revision_number = revision_number + 1 WHERE id = $3",
        )
        .bind(status)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(true)
}

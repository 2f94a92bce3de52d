//! l2population: for a host with ports on a network, the other hosts holding bound ports there
//! (their tunnel endpoints and their ports' MACs), so that its agent can keep the forwarding
//! entries of the network's tunnel devices exact. The feed side is `network_feed`
//! ([`crate::feed::FeedEntries::add_network`], [`crate::feed::networks_since`]).

use std::collections::{BTreeMap, HashMap};

use sqlx::AnyConnection;

/// Binding results that put no device anywhere.
const NOT_BOUND: [&str; 2] = ["unbound", "binding_failed"];

/// MACs of the ports bound on `network_id` to hosts other than `host`, by host.
pub async fn bound_elsewhere(
    conn: &mut AnyConnection,
    network_id: &str,
    host: &str,
) -> crate::Result<BTreeMap<String, Vec<String>>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT binding_host, mac_address FROM ports WHERE network_id = $1 \
         AND binding_host <> '' AND binding_host <> $2 \
         AND binding_vif_type <> $3 AND binding_vif_type <> $4 ORDER BY binding_host, mac_address",
    )
    .bind(network_id)
    .bind(host)
    .bind(NOT_BOUND[0])
    .bind(NOT_BOUND[1])
    .fetch_all(conn)
    .await?;
    let mut by_host: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (host, mac) in rows {
        by_host.entry(host).or_default().push(mac);
    }
    Ok(by_host)
}

/// The networks on which `host` holds bound ports (found through the host's feed entries:
/// ports are not indexed by host).
pub async fn networks_bound_on(conn: &mut AnyConnection, host: &str) -> crate::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT p.network_id FROM host_feed f JOIN ports p ON p.id = f.object_id \
         WHERE f.host = $1 AND f.kind = 'port' AND p.binding_host = $1 \
           AND p.binding_vif_type <> $2 AND p.binding_vif_type <> $3",
    )
    .bind(host)
    .bind(NOT_BOUND[0])
    .bind(NOT_BOUND[1])
    .fetch_all(conn)
    .await?)
}

/// The tunnel endpoint (`configurations.tunneling_ip`) each of `hosts` reports, for those whose
/// agents report one.
pub async fn tunnel_endpoints(
    conn: &mut AnyConnection,
    hosts: &[String],
) -> crate::Result<HashMap<String, String>> {
    let mut endpoints = HashMap::new();
    for (chunk, rows) in crate::value_chunks(crate::Backend::of(conn), hosts, 1, 0) {
        let sql = format!(
            "SELECT a.host, a.configurations FROM (VALUES {rows}) AS v \
             JOIN agents a ON a.host = v.column1 ORDER BY a.host, a.agent_type"
        );
        let mut query = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
        for host in chunk {
            query = query.bind(host);
        }
        for (host, configurations) in query.fetch_all(&mut *conn).await? {
            let reported: serde_json::Value =
                serde_json::from_str(&configurations).unwrap_or_default();
            if let Some(ip) = reported["tunneling_ip"]
                .as_str()
                .filter(|ip| !ip.is_empty())
            {
                endpoints.entry(host).or_insert_with(|| ip.to_string());
            }
        }
    }
    Ok(endpoints)
}

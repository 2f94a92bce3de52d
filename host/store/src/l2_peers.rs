//! l2population: for a host with ports on a network, the other hosts holding bound ports there
//! (their tunnel endpoints and their ports' MACs), so that its agent can keep the forwarding
//! entries of the network's tunnel devices exact. The feed side is `network_feed`
//! ([`crate::feed::FeedEntries::add_network`], [`crate::feed::networks_since`]).

use std::collections::{BTreeMap, HashMap};

use sqlx::AnyConnection;

/// Binding results that put no device anywhere.
const NOT_BOUND: [&str; 2] = ["unbound", "binding_failed"];

/// Remote MACs of one network a host is told at most. Past it, it is told its peers without
/// their MACs (flood entries only; the VXLAN devices learn the rest): a network of a million
/// ports would otherwise cost every host on it an answer of a million MACs at each change.
pub const MAX_PEER_MACS: usize = 4096;

/// MACs of the ports bound on `network_id` to hosts other than `host`, by host; every such
/// host with no MACs when there are more than `max_macs` of them.
pub async fn bound_elsewhere(
    conn: &mut AnyConnection,
    network_id: &str,
    host: &str,
    max_macs: usize,
) -> crate::Result<BTreeMap<String, Vec<String>>> {
    const BOUND_ELSEWHERE: &str = "FROM ports WHERE network_id = $1 \
         AND binding_host <> '' AND binding_host <> $2 \
         AND binding_vif_type <> $3 AND binding_vif_type <> $4";
    let limit = i64::try_from(max_macs).unwrap_or(i64::MAX - 1) + 1;
    let rows: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT binding_host, mac_address {BOUND_ELSEWHERE} LIMIT $5"
    )))
    .bind(network_id)
    .bind(host)
    .bind(NOT_BOUND[0])
    .bind(NOT_BOUND[1])
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_host: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if rows.len() > max_macs {
        let hosts: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT binding_host {BOUND_ELSEWHERE}"
        )))
        .bind(network_id)
        .bind(host)
        .bind(NOT_BOUND[0])
        .bind(NOT_BOUND[1])
        .fetch_all(&mut *conn)
        .await?;
        by_host.extend(hosts.into_iter().map(|h| (h, Vec::new())));
        return Ok(by_host);
    }
    for (host, mac) in rows {
        by_host.entry(host).or_default().push(mac);
    }
    for macs in by_host.values_mut() {
        macs.sort_unstable();
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

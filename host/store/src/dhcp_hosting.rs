//! Which hosts serve each network's DHCP (`dhcp_hosting`, one row per network and host), and
//! the feed entries that follow from it: a port change is news for its binding host and for
//! its network's DHCP hosts.

use std::collections::HashMap;

use sqlx::{Any, AnyConnection, Executor};

use super::feed::{self, FeedEntries, FeedKind};

/// A network's DHCP: the host whose agent serves it, and the DHCP port it serves it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hosting {
    pub network_id: String,
    pub host: String,
    pub port_id: String,
}

/// The hostings of a network, by host.
impl From<(String, String, String)> for Hosting {
    fn from((network_id, host, port_id): (String, String, String)) -> Self {
        Hosting {
            network_id,
            host,
            port_id,
        }
    }
}

pub async fn of_network<'e, E: Executor<'e, Database = Any>>(
    e: E,
    network_id: &str,
) -> crate::Result<Vec<Hosting>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT network_id, host, port_id FROM dhcp_hosting WHERE network_id = $1 ORDER BY host",
    )
    .bind(network_id)
    .fetch_all(e)
    .await?;
    Ok(rows.into_iter().map(Hosting::from).collect())
}

/// The DHCP hosts of each of `network_ids` that has any, in as few statements as the backend
/// allows.
pub async fn hosts_of_networks(
    conn: &mut AnyConnection,
    network_ids: &[String],
) -> crate::Result<HashMap<String, Vec<String>>> {
    let mut hosts: HashMap<String, Vec<String>> = HashMap::new();
    for (chunk, rows) in crate::value_chunks(crate::Backend::of(conn), network_ids, 1, 0) {
        let sql = format!(
            "SELECT h.network_id, h.host FROM (VALUES {rows}) AS v \
             JOIN dhcp_hosting h ON h.network_id = v.column1 ORDER BY h.host"
        );
        let mut query = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(id);
        }
        for (network, host) in query.fetch_all(&mut *conn).await? {
            hosts.entry(network).or_default().push(host);
        }
    }
    Ok(hosts)
}

/// The networks `host` serves, by id.
pub async fn on_host<'e, E: Executor<'e, Database = Any>>(
    e: E,
    host: &str,
) -> crate::Result<Vec<Hosting>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT network_id, host, port_id FROM dhcp_hosting WHERE host = $1 ORDER BY network_id",
    )
    .bind(host)
    .fetch_all(e)
    .await?;
    Ok(rows.into_iter().map(Hosting::from).collect())
}

/// How many networks each host serves (hosts serving none are absent).
pub async fn networks_per_host<'e, E: Executor<'e, Database = Any>>(
    e: E,
) -> crate::Result<HashMap<String, i64>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT host, COUNT(*) FROM dhcp_hosting GROUP BY host")
            .fetch_all(e)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Networks that have a DHCP-enabled subnet and fewer than `per_network` DHCP hosts, oldest
/// subnet first.
pub async fn waiting<'e, E: Executor<'e, Database = Any>>(
    e: E,
    per_network: usize,
) -> crate::Result<Vec<String>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT s.network_id, MIN(s.created_at) FROM subnets s WHERE s.enable_dhcp = 1 \
         AND (SELECT COUNT(*) FROM dhcp_hosting h WHERE h.network_id = s.network_id) < $1 \
         GROUP BY s.network_id ORDER BY 2, 1",
    )
    .bind(i64::try_from(per_network).unwrap_or(i64::MAX))
    .fetch_all(e)
    .await?;
    Ok(rows.into_iter().map(|(network, _)| network).collect())
}

pub async fn insert(conn: &mut AnyConnection, h: &Hosting) -> crate::Result<()> {
    sqlx::query("INSERT INTO dhcp_hosting (network_id, host, port_id) VALUES ($1, $2, $3)")
        .bind(&h.network_id)
        .bind(&h.host)
        .bind(&h.port_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete(conn: &mut AnyConnection, h: &Hosting) -> crate::Result<()> {
    sqlx::query("DELETE FROM dhcp_hosting WHERE network_id = $1 AND host = $2")
        .bind(&h.network_id)
        .bind(&h.host)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records that a port changed, for `hosts` (its binding host, before and after) and for its
/// network's DHCP hosts. Returns the revision, as [`feed::record`] does.
pub async fn record_port(
    conn: &mut AnyConnection,
    network_id: &str,
    port_id: &str,
    hosts: &[&str],
) -> crate::Result<Option<i64>> {
    let dhcp: Vec<String> = of_network(&mut *conn, network_id)
        .await?
        .into_iter()
        .map(|h| h.host)
        .collect();
    let mut entries = FeedEntries::default();
    add_port(&mut entries, network_id, port_id, hosts, &dhcp);
    entries.write(conn).await
}

/// Who hears of a port change: `hosts` (its binding host, before and after) and the hosts
/// serving its network's DHCP; and, when it is or was bound to a host, every host on its
/// network (its peers changed: l2population).
pub fn add_port(
    entries: &mut FeedEntries,
    network_id: &str,
    port_id: &str,
    hosts: &[&str],
    dhcp_hosts: &[String],
) {
    let mut all = hosts.to_vec();
    all.extend(dhcp_hosts.iter().map(String::as_str));
    entries.add(&all, FeedKind::Port, port_id);
    if hosts.iter().any(|h| !h.is_empty()) {
        entries.add_network(network_id);
    }
}

/// Records that the DHCP of a network changed (its subnets, its network, its hosting) for the
/// hosts serving it, if any.
pub async fn record_network(
    conn: &mut AnyConnection,
    network_id: &str,
) -> crate::Result<Option<i64>> {
    let hostings = of_network(&mut *conn, network_id).await?;
    if hostings.is_empty() {
        return Ok(None);
    }
    let hosts: Vec<&str> = hostings.iter().map(|h| h.host.as_str()).collect();
    feed::record(conn, &hosts, FeedKind::DhcpNetwork, network_id).await
}

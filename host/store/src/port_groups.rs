//! Which ports are in which security group (`port_security_groups`, written with the ports'
//! `security_groups` column by [`crate::ports`]): a group's members, the hosts whose filters
//! name it, and whether it is in use, each found by index rather than by reading every port.

use std::collections::{BTreeSet, HashMap};

use sqlx::{Any, AnyConnection, Transaction};

use crate::feed::{FeedEntries, FeedKind};
use crate::ports::Port;

/// The groups of a port as its `security_groups` column holds them (a JSON array of ids).
pub fn groups_of(port: &Port) -> Vec<String> {
    serde_json::from_str(&port.security_groups).unwrap_or_default()
}

/// Makes the rows of a port its current groups after an update that named them (written only
/// when they differ as sets: the same groups in another order change nothing).
pub async fn set(tx: &mut Transaction<'_, Any>, port: &Port) -> crate::Result<()> {
    let stored: BTreeSet<String> =
        sqlx::query_scalar("SELECT security_group_id FROM port_security_groups WHERE port_id = $1")
            .bind(&port.id)
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .collect();
    let now: BTreeSet<String> = groups_of(port).into_iter().collect();
    if stored == now {
        return Ok(());
    }
    forget(tx, &port.id).await?;
    add(tx, std::slice::from_ref(port)).await?;
    members_changed(tx, &stored.union(&now).cloned().collect()).await?;
    Ok(())
}

/// The rows of new `ports` (a port not in the table, not inserted because its MAC was taken,
/// gets none); the hosts whose filters name their groups hear of new members.
pub async fn added(tx: &mut Transaction<'_, Any>, ports: &[Port]) -> crate::Result<()> {
    add(tx, ports).await?;
    let groups: BTreeSet<String> = ports.iter().flat_map(groups_of).collect();
    members_changed(tx, &groups).await?;
    Ok(())
}

async fn add(tx: &mut Transaction<'_, Any>, ports: &[Port]) -> crate::Result<()> {
    let rows: Vec<(String, String)> = ports
        .iter()
        .flat_map(|p| groups_of(p).into_iter().map(|g| (p.id.clone(), g)))
        .collect();
    crate::insert_rows(
        tx,
        &rows,
        2,
        |values| {
            format!(
                "INSERT INTO port_security_groups (port_id, security_group_id, host) \
                 SELECT v.column1, v.column2, p.binding_host FROM (VALUES {values}) AS v \
                 JOIN ports p ON p.id = v.column1 WHERE true \
                 ON CONFLICT DO NOTHING"
            )
        },
        |query, (port, group)| query.bind(port).bind(group),
    )
    .await?;
    Ok(())
}

async fn forget(tx: &mut Transaction<'_, Any>, port_id: &str) -> crate::Result<()> {
    sqlx::query("DELETE FROM port_security_groups WHERE port_id = $1")
        .bind(port_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The rows of a deleted port go; the hosts whose filters name its groups hear of it.
pub async fn removed(tx: &mut Transaction<'_, Any>, port_id: &str) -> crate::Result<()> {
    let groups: BTreeSet<String> = sqlx::query_scalar(
        "DELETE FROM port_security_groups WHERE port_id = $1 RETURNING security_group_id",
    )
    .bind(port_id)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    members_changed(tx, &groups).await?;
    Ok(())
}

/// The member addresses of each group: its ports' fixed IPs and their allowed address pairs'
/// addresses (Neutron's `sg_member_ips`).
pub async fn members(
    conn: &mut AnyConnection,
    group_ids: &BTreeSet<String>,
) -> crate::Result<HashMap<String, Vec<String>>> {
    let mut members: HashMap<String, Vec<String>> = HashMap::new();
    for group in group_ids {
        let mut addresses: BTreeSet<String> = sqlx::query_scalar(
            "SELECT a.ip_address FROM port_security_groups g \
             JOIN ip_allocations a ON a.port_id = g.port_id WHERE g.security_group_id = $1",
        )
        .bind(group)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
        let pairs: Vec<String> = sqlx::query_scalar(
            "SELECT p.allowed_address_pairs FROM port_security_groups g \
             JOIN ports p ON p.id = g.port_id \
             WHERE g.security_group_id = $1 AND p.allowed_address_pairs <> '[]'",
        )
        .bind(group)
        .fetch_all(&mut *conn)
        .await?;
        for text in pairs {
            let pairs: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap_or_default();
            addresses.extend(
                pairs
                    .iter()
                    .filter_map(|p| p["ip_address"].as_str().map(str::to_string)),
            );
        }
        members.insert(group.clone(), addresses.into_iter().collect());
    }
    Ok(members)
}

/// A port's rows follow its binding to another host (or to none).
pub async fn rebound(tx: &mut Transaction<'_, Any>, port: &Port) -> crate::Result<()> {
    sqlx::query("UPDATE port_security_groups SET host = $2 WHERE port_id = $1 AND host <> $2")
        .bind(&port.id)
        .bind(&port.binding_host)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The hosts with bound ports whose groups have a rule naming `group_id` as its remote group:
/// those that hear when its members change.
pub async fn hosts_naming(conn: &mut AnyConnection, group_id: &str) -> crate::Result<Vec<String>> {
    let mut hosts = BTreeSet::new();
    for group in groups_naming(&mut *conn, group_id).await? {
        hosts.extend(hosts_of(&mut *conn, &group).await?);
    }
    Ok(hosts.into_iter().collect())
}

/// The hosts a group has bound ports on, one index probe per host (a loose index scan: each
/// step finds the next host after the last), however many ports the group has.
async fn hosts_of(conn: &mut AnyConnection, group_id: &str) -> crate::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "WITH RECURSIVE h(host) AS ( \
           SELECT (SELECT host FROM port_security_groups \
                   WHERE security_group_id = $1 AND host > '' ORDER BY host LIMIT 1) \
           UNION ALL \
           SELECT (SELECT g.host FROM port_security_groups g \
                   WHERE g.security_group_id = $1 AND g.host > h.host ORDER BY g.host LIMIT 1) \
           FROM h WHERE h.host IS NOT NULL) \
         SELECT host FROM h WHERE host IS NOT NULL",
    )
    .bind(group_id)
    .fetch_all(conn)
    .await?)
}

/// The bound ports of a group and their hosts: those whose filters change with its rules.
pub async fn bound_ports(
    conn: &mut AnyConnection,
    group_id: &str,
) -> crate::Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT port_id, host FROM port_security_groups \
         WHERE security_group_id = $1 AND host <> ''",
    )
    .bind(group_id)
    .fetch_all(conn)
    .await?)
}

/// The groups with a rule naming `group_id` as its remote group.
pub async fn groups_naming(conn: &mut AnyConnection, group_id: &str) -> crate::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT security_group_id FROM security_group_rules WHERE remote_group_id = $1",
    )
    .bind(group_id)
    .fetch_all(conn)
    .await?)
}

/// Feed entries for a change of these groups' rules: each bound port of theirs, for its host
/// (its filter changed). The revision, as [`crate::feed::record`] gives it.
pub async fn rules_changed(
    conn: &mut AnyConnection,
    group_ids: &[String],
) -> crate::Result<Option<i64>> {
    let mut entries = FeedEntries::default();
    for group in group_ids {
        for (port, host) in bound_ports(&mut *conn, group).await? {
            entries.add(&[&host], FeedKind::Port, &port);
        }
    }
    entries.write(conn).await
}

/// Feed entries for a change of these groups' members (written in the caller's transaction,
/// whose own feed entries wake the polls): each host whose filters name one.
pub async fn members_changed(
    conn: &mut AnyConnection,
    group_ids: &BTreeSet<String>,
) -> crate::Result<Option<i64>> {
    let mut entries = FeedEntries::default();
    for group in group_ids {
        for host in hosts_naming(&mut *conn, group).await? {
            entries.add(&[&host], FeedKind::SecurityGroup, group);
        }
    }
    entries.write(conn).await
}

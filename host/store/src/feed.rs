//! The per-host change feed agents long-poll (see `agent::protocol`). Writers call [`record`]
//! inside the transaction that makes the change; readers ask what changed after a revision.

use std::collections::BTreeSet;

use sqlx::{AnyConnection, Row as _};

use super::insert_rows;

/// What a feed entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FeedKind {
    Port,
    DhcpNetwork,
    Instance,
    /// The members of a security group changed (for hosts whose filters name it).
    SecurityGroup,
    /// A router the host's L3 agent serves: the router, its ports or its floating IPs changed.
    Router,
}

impl FeedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedKind::Port => "port",
            FeedKind::DhcpNetwork => "dhcp_network",
            FeedKind::Instance => "instance",
            FeedKind::SecurityGroup => "security_group",
            FeedKind::Router => "router",
        }
    }

    pub fn named(s: &str) -> Option<FeedKind> {
        match s {
            "port" => Some(FeedKind::Port),
            "dhcp_network" => Some(FeedKind::DhcpNetwork),
            "instance" => Some(FeedKind::Instance),
            "security_group" => Some(FeedKind::SecurityGroup),
            "router" => Some(FeedKind::Router),
            _ => None,
        }
    }
}

/// Records, in the caller's transaction, that `object_id` changed for each of `hosts` (empty
/// host names are skipped). Returns the new revision, or None when there was no host to tell.
pub async fn record(
    conn: &mut AnyConnection,
    hosts: &[&str],
    kind: FeedKind,
    object_id: &str,
) -> crate::Result<Option<i64>> {
    let mut entries = FeedEntries::default();
    entries.add(hosts, kind, object_id);
    entries.write(conn).await
}

/// Feed entries gathered over a transaction and written together at its end: one counter
/// `UPDATE` and multi-row upserts, however many objects changed (a batch of port creates).
#[derive(Debug, Default)]
pub struct FeedEntries {
    entries: BTreeSet<(String, FeedKind, String)>,
    /// Networks whose bound ports changed: news for every host with a port bound on them
    /// (`network_feed`, l2population).
    networks: BTreeSet<String>,
}

impl FeedEntries {
    /// `object_id` changed for each of `hosts` (empty host names are skipped).
    pub fn add(&mut self, hosts: &[&str], kind: FeedKind, object_id: &str) {
        for host in hosts.iter().filter(|h| !h.is_empty()) {
            self.entries
                .insert((host.to_string(), kind, object_id.to_string()));
        }
    }

    /// The set of ports bound on `network_id` changed (its peers, for the hosts on it).
    pub fn add_network(&mut self, network_id: &str) {
        self.networks.insert(network_id.to_string());
    }

    /// Writes what was added (and forgets it). Returns the new revision, or None when there
    /// was nothing to write.
    pub async fn write(&mut self, conn: &mut AnyConnection) -> crate::Result<Option<i64>> {
        if self.entries.is_empty() && self.networks.is_empty() {
            return Ok(None);
        }
        let entries: Vec<_> = std::mem::take(&mut self.entries).into_iter().collect();
        let networks: Vec<_> = std::mem::take(&mut self.networks).into_iter().collect();
        let revision: i64 = sqlx::query_scalar(
            "UPDATE feed_revision SET revision = revision + 1 WHERE id = 1 RETURNING revision",
        )
        .fetch_one(&mut *conn)
        .await?;
        // The set has each (host, kind, object) once: PostgreSQL refuses an upsert that would
        // touch a row twice.
        let statement = |rows: &str| {
            format!(
                "INSERT INTO host_feed (host, kind, object_id, revision) VALUES {rows} \
                 ON CONFLICT (host, kind, object_id) DO UPDATE SET revision = excluded.revision"
            )
        };
        insert_rows(
            &mut *conn,
            &entries,
            4,
            statement,
            |query, (host, kind, object_id)| {
                query
                    .bind(host)
                    .bind(kind.as_str())
                    .bind(object_id)
                    .bind(revision)
            },
        )
        .await?;
        let statement = |rows: &str| {
            format!(
                "INSERT INTO network_feed (network_id, revision) VALUES {rows} \
                 ON CONFLICT (network_id) DO UPDATE SET revision = excluded.revision"
            )
        };
        insert_rows(&mut *conn, &networks, 2, statement, |query, network_id| {
            query.bind(network_id).bind(revision)
        })
        .await?;
        Ok(Some(revision))
    }
}

/// The newest revision of the whole feed.
pub async fn revision(conn: &mut AnyConnection) -> crate::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT revision FROM feed_revision WHERE id = 1")
            .fetch_one(conn)
            .await?,
    )
}

/// What changed on `host` after `after` and up to `upto`, oldest first. `upto` is a revision
/// read before (revisions follow commit order, so everything up to it is committed and seen
/// here); entries committed later are left for the next look, which keeps an answer's revision
/// no newer than the state it carries.
pub async fn changes_since(
    conn: &mut AnyConnection,
    host: &str,
    after: i64,
    upto: i64,
) -> crate::Result<Vec<(FeedKind, String)>> {
    let rows = sqlx::query(
        "SELECT kind, object_id FROM host_feed WHERE host = $1 AND revision > $2 \
         AND revision <= $3 ORDER BY revision",
    )
    .bind(host)
    .bind(after)
    .bind(upto)
    .fetch_all(conn)
    .await?;
    let mut changes = Vec::with_capacity(rows.len());
    for row in rows {
        let kind: String = row.try_get("kind")?;
        if let Some(kind) = FeedKind::named(&kind) {
            changes.push((kind, row.try_get("object_id")?));
        }
    }
    Ok(changes)
}

/// Networks whose bound ports changed after `after` and up to `upto` (as in
/// [`changes_since`]) and on which `host` has a bound port.
pub async fn networks_since(
    conn: &mut AnyConnection,
    host: &str,
    after: i64,
    upto: i64,
) -> crate::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT n.network_id FROM network_feed n WHERE n.revision > $1 AND n.revision <= $2 \
         AND EXISTS (SELECT 1 FROM ports p WHERE p.network_id = n.network_id \
         AND p.binding_host = $3) ORDER BY n.revision",
    )
    .bind(after)
    .bind(upto)
    .bind(host)
    .fetch_all(conn)
    .await?)
}

/// Wakes the long polls of this server when a transaction that recorded feed entries has
/// committed. Other servers sharing PostgreSQL are not woken by it: long polls also re-read the
/// feed every second.
#[derive(Debug)]
pub struct FeedSignal {
    sender: tokio::sync::watch::Sender<i64>,
    /// Set when the server stops: waiting polls answer at once instead of holding the stop.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Default for FeedSignal {
    fn default() -> Self {
        FeedSignal {
            sender: tokio::sync::watch::Sender::new(0),
            stopping: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl FeedSignal {
    /// Call after the commit of a transaction in which [`record`] returned `revision`.
    pub fn committed(&self, revision: Option<i64>) {
        if let Some(revision) = revision {
            self.sender.send_if_modified(|newest| {
                let newer = revision > *newest;
                if newer {
                    *newest = revision;
                }
                newer
            });
        }
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.sender.subscribe()
    }

    /// The server stops: every poll waiting, and every poll to come, answers at once.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Resolves once [`FeedSignal::stop`] has been called.
    pub async fn stopped(&self) {
        let mut stopping = self.stopping.subscribe();
        let _ = stopping.wait_for(|s| *s).await;
    }
}

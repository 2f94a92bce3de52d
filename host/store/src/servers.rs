//! Instances (`/v2.1/servers`) and their NICs, and what the agent of their host needs of them.

use std::collections::HashMap;

use neutrino_model::{Attachment, AttachmentKind};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row as _};

use neutrino_model::instance_namespace;

pub const BUILD: &str = "BUILD";
pub const ACTIVE: &str = "ACTIVE";
pub const ERROR: &str = "ERROR";

/// A server as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub name: String,
    /// Empty when no host could be found for it.
    pub host: String,
    /// [`BUILD`], [`ACTIVE`] or [`ERROR`].
    pub status: String,
    /// Why it is in ERROR.
    pub fault: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Still in BUILD after this (`agents::stored_time` text), it goes to ERROR.
    pub build_deadline: String,
}

/// One NIC of a server; its position in the server's list is its index (`eth<index>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub port_id: String,
    pub interface_name: String,
    /// The server created the port (and deletes it); otherwise the port was given.
    pub created_port: bool,
    pub leased_ip: Option<String>,
}

/// The name of the NIC at `position`: `eth0`, `eth1`, ...
pub fn interface_name(position: usize) -> String {
    format!("eth{position}")
}

macro_rules! columns {
    () => {
        "id, project_id, user_id, name, host, status, fault, created_at, updated_at, build_deadline"
    };
}

fn from_row(r: &AnyRow) -> crate::Result<Server> {
    Ok(Server {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        user_id: r.try_get("user_id")?,
        name: r.try_get("name")?,
        host: r.try_get("host")?,
        status: r.try_get("status")?,
        fault: r.try_get("fault")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        build_deadline: r.try_get("build_deadline")?,
    })
}

/// Writes a new server and its NICs (in the caller's transaction).
pub async fn insert(conn: &mut AnyConnection, s: &Server, nics: &[Nic]) -> crate::Result<()> {
    sqlx::query(concat!(
        "INSERT INTO servers (",
        columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(&s.id)
    .bind(&s.project_id)
    .bind(&s.user_id)
    .bind(&s.name)
    .bind(&s.host)
    .bind(&s.status)
    .bind(&s.fault)
    .bind(&s.created_at)
    .bind(&s.updated_at)
    .bind(&s.build_deadline)
    .execute(&mut *conn)
    .await?;
    for (position, nic) in nics.iter().enumerate() {
        sqlx::query(
            "INSERT INTO server_nics (server_id, position, port_id, interface_name, created_port, \
             leased_ip) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&s.id)
        .bind(position as i64)
        .bind(&nic.port_id)
        .bind(&nic.interface_name)
        .bind(i64::from(nic.created_port))
        .bind(&nic.leased_ip)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn get(conn: &mut AnyConnection, id: &str) -> crate::Result<Option<Server>> {
    sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM servers WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .map(|r| from_row(&r))
    .transpose()
}

/// Servers, newest first (Nova's default order); only `project`'s when given.
pub async fn list(pool: &AnyPool, project: Option<&str>) -> crate::Result<Vec<Server>> {
    let rows = match project {
        Some(p) => {
            sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM servers WHERE project_id = $1 ORDER BY created_at DESC, id"
            ))
            .bind(p)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM servers ORDER BY created_at DESC, id"
            ))
            .fetch_all(pool)
            .await?
        }
    };
    rows.iter().map(from_row).collect()
}

/// The server's NICs in order.
pub async fn nics(conn: &mut AnyConnection, server_id: &str) -> crate::Result<Vec<Nic>> {
    let rows = sqlx::query(
        "SELECT port_id, interface_name, created_port, leased_ip FROM server_nics \
         WHERE server_id = $1 ORDER BY position",
    )
    .bind(server_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Nic {
                port_id: r.try_get("port_id")?,
                interface_name: r.try_get("interface_name")?,
                created_port: super::flag(r, "created_port")?,
                leased_ip: r.try_get("leased_ip")?,
            })
        })
        .collect()
}

/// One fixed address of a server's NIC, with what Nova's `addresses` shows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub server_id: String,
    pub network_name: String,
    pub mac_address: String,
    pub ip_address: String,
    pub ip_version: i64,
}

/// Which servers' addresses to read.
#[derive(Debug, Clone, Copy)]
pub enum Servers<'a> {
    One(&'a str),
    OfProject(&'a str),
    All,
}

/// The addresses of the chosen servers' NICs, in NIC order, in one query.
pub async fn addresses(pool: &AnyPool, which: Servers<'_>) -> crate::Result<Vec<Address>> {
    let (condition, value) = match which {
        Servers::One(id) => ("n.server_id = $1", Some(id)),
        Servers::OfProject(p) => ("s.project_id = $1", Some(p)),
        Servers::All => ("1 = 1", None),
    };
    let sql = format!(
        "SELECT n.server_id, net.name AS network_name, p.mac_address, a.ip_address, sub.ip_version \
         FROM server_nics n JOIN servers s ON s.id = n.server_id \
         JOIN ports p ON p.id = n.port_id JOIN networks net ON net.id = p.network_id \
         JOIN ip_allocations a ON a.port_id = p.id JOIN subnets sub ON sub.id = a.subnet_id \
         WHERE {condition} ORDER BY n.server_id, n.position, a.position"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    if let Some(v) = value {
        query = query.bind(v);
    }
    query
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(Address {
                server_id: r.try_get("server_id")?,
                network_name: r.try_get("network_name")?,
                mac_address: r.try_get("mac_address")?,
                ip_address: r.try_get("ip_address")?,
                ip_version: r.try_get("ip_version")?,
            })
        })
        .collect()
}

/// `$first, $first+1, ...` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How many servers that hold resources (not in ERROR) each of `hosts` has; hosts without any
/// are absent.
pub async fn load_on(pool: &AnyPool, hosts: &[String]) -> crate::Result<HashMap<String, i64>> {
    let mut load = HashMap::new();
    // Bounded IN lists: a deployment of many hosts must not build one enormous statement.
    for chunk in hosts.chunks(500) {
        let sql = format!(
            "SELECT host, COUNT(*) AS servers FROM servers WHERE status <> 'ERROR' \
             AND host IN ({}) GROUP BY host",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for host in chunk {
            query = query.bind(host);
        }
        for row in query.fetch_all(pool).await? {
            load.insert(row.try_get("host")?, row.try_get("servers")?);
        }
    }
    Ok(load)
}

/// Stores the address the DHCP client of the server's NIC on `port_id` holds.
pub async fn set_lease(
    conn: &mut AnyConnection,
    server_id: &str,
    port_id: &str,
    leased_ip: Option<&str>,
) -> crate::Result<()> {
    sqlx::query("UPDATE server_nics SET leased_ip = $3 WHERE server_id = $1 AND port_id = $2")
        .bind(server_id)
        .bind(port_id)
        .bind(leased_ip)
        .execute(conn)
        .await?;
    Ok(())
}

/// What a NIC is waiting for: its port wired (ACTIVE) and a lease of one of its fixed IPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicState {
    pub interface_name: String,
    pub port_id: String,
    /// None when the port is gone.
    pub port_status: Option<String>,
    pub leased_ip: Option<String>,
    pub fixed_ips: Vec<String>,
}

impl NicState {
    pub fn ready(&self) -> bool {
        self.port_status.as_deref() == Some("ACTIVE")
            && self
                .leased_ip
                .as_ref()
                .is_some_and(|ip| self.fixed_ips.contains(ip))
    }

    /// Why the NIC is not ready, for a fault message; None when it is.
    pub fn waiting_for(&self) -> Option<String> {
        let mut missing = Vec::new();
        match self.port_status.as_deref() {
            None => missing.push(format!("port {} is gone", self.port_id)),
            Some("ACTIVE") => {}
            Some(status) => missing.push(format!("port {} is {status}", self.port_id)),
        }
        match &self.leased_ip {
            None => missing.push("no DHCP lease".to_string()),
            Some(ip) if !self.fixed_ips.contains(ip) => missing.push(format!(
                "leased {ip}, not one of its fixed IPs [{}]",
                self.fixed_ips.join(", ")
            )),
            Some(_) => {}
        }
        (!missing.is_empty()).then(|| format!("{}: {}", self.interface_name, missing.join(", ")))
    }
}

/// Every NIC of the server with its port's status and addresses.
pub async fn nic_states(conn: &mut AnyConnection, server_id: &str) -> crate::Result<Vec<NicState>> {
    let rows = sqlx::query(
        "SELECT n.interface_name, n.port_id, n.leased_ip, p.status, a.ip_address \
         FROM server_nics n LEFT JOIN ports p ON p.id = n.port_id \
         LEFT JOIN ip_allocations a ON a.port_id = n.port_id \
         WHERE n.server_id = $1 ORDER BY n.position, a.position",
    )
    .bind(server_id)
    .fetch_all(conn)
    .await?;
    let mut out: Vec<NicState> = Vec::new();
    for row in rows {
        let port_id: String = row.try_get("port_id")?;
        let ip: Option<String> = row.try_get("ip_address")?;
        if out.last().is_none_or(|n| n.port_id != port_id) {
            out.push(NicState {
                interface_name: row.try_get("interface_name")?,
                port_id,
                port_status: row.try_get("status")?,
                leased_ip: row.try_get("leased_ip")?,
                fixed_ips: Vec::new(),
            });
        }
        if let (Some(ip), Some(nic)) = (ip, out.last_mut()) {
            nic.fixed_ips.push(ip);
        }
    }
    Ok(out)
}

/// Makes a server in BUILD ACTIVE when every NIC is ready. True when this call did.
pub async fn activate_if_ready(conn: &mut AnyConnection, server_id: &str) -> crate::Result<bool> {
    let nics = nic_states(&mut *conn, server_id).await?;
    if nics.is_empty() || !nics.iter().all(NicState::ready) {
        return Ok(false);
    }
    let done = sqlx::query(
        "UPDATE servers SET status = 'ACTIVE', updated_at = $2 WHERE id = $1 AND status = 'BUILD'",
    )
    .bind(server_id)
    .bind(super::now())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Re-checks the servers in BUILD that have a NIC on one of `port_ids` (after their ports'
/// status changed) and makes those that are ready ACTIVE. Returns the ids of those. The
/// ports/status endpoint calls this in the transaction that writes the statuses.
pub async fn refresh_status(
    conn: &mut AnyConnection,
    port_ids: &[String],
) -> crate::Result<Vec<String>> {
    let mut activated = Vec::new();
    for chunk in port_ids.chunks(500) {
        let sql = format!(
            "SELECT DISTINCT n.server_id FROM server_nics n JOIN servers s ON s.id = n.server_id \
             WHERE s.status = 'BUILD' AND n.port_id IN ({}) ORDER BY n.server_id",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(id);
        }
        for server_id in query.fetch_all(&mut *conn).await? {
            if activate_if_ready(&mut *conn, &server_id).await? {
                activated.push(server_id);
            }
        }
    }
    Ok(activated)
}

/// Puts a server in BUILD into ERROR with `fault`. False when it was not in BUILD (already
/// ACTIVE, ERROR, deleted, or another server's sweep got there first): the guard makes
/// concurrent callers on PostgreSQL safe, the second waits for the first's row lock and then
/// finds nothing to do.
pub async fn fail_build(conn: &mut AnyConnection, id: &str, fault: &str) -> crate::Result<bool> {
    let done = sqlx::query(
        "UPDATE servers SET status = 'ERROR', fault = $2, updated_at = $3 \
         WHERE id = $1 AND status = 'BUILD'",
    )
    .bind(id)
    .bind(fault)
    .bind(super::now())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The ids of servers still in BUILD whose deadline is before `now` (`agents::stored_time`).
pub async fn building_past(pool: &AnyPool, now: &str) -> crate::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM servers WHERE status = 'BUILD' AND build_deadline < $1 \
         ORDER BY build_deadline LIMIT 100",
    )
    .bind(now)
    .fetch_all(pool)
    .await?)
}

/// Forgets the server's NICs (its ports were released).
pub async fn remove_nics(conn: &mut AnyConnection, server_id: &str) -> crate::Result<()> {
    sqlx::query("DELETE FROM server_nics WHERE server_id = $1")
        .bind(server_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes the server and its NICs. False when it was already gone.
pub async fn delete(conn: &mut AnyConnection, id: &str) -> crate::Result<bool> {
    remove_nics(&mut *conn, id).await?;
    let done = sqlx::query("DELETE FROM servers WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// An instance placed on a host, with its NICs in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedInstance {
    pub id: String,
    pub name: String,
    pub nics: Vec<PlacedNic>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedNic {
    pub port_id: String,
    pub interface_name: String,
    pub mac_address: String,
}

/// The instances placed on `host` (all of them, or only those in `ids`), with their NICs.
pub async fn host_instances(
    conn: &mut AnyConnection,
    host: &str,
    ids: Option<&[String]>,
) -> crate::Result<Vec<PlacedInstance>> {
    let rows = sqlx::query(
        "SELECT s.id, s.name, n.port_id, n.interface_name, p.mac_address \
         FROM servers s JOIN server_nics n ON n.server_id = s.id \
         JOIN ports p ON p.id = n.port_id \
         WHERE s.host = $1 ORDER BY s.id, n.position",
    )
    .bind(host)
    .fetch_all(conn)
    .await?;
    let mut out: Vec<PlacedInstance> = Vec::new();
    for row in rows {
        let id: String = row.try_get("id")?;
        if ids.is_some_and(|ids| !ids.contains(&id)) {
            continue;
        }
        let nic = PlacedNic {
            port_id: row.try_get("port_id")?,
            interface_name: row.try_get("interface_name")?,
            mac_address: row.try_get("mac_address")?,
        };
        match out.last_mut() {
            Some(last) if last.id == id => last.nics.push(nic),
            _ => out.push(PlacedInstance {
                name: row.try_get("name")?,
                id,
                nics: vec![nic],
            }),
        }
    }
    Ok(out)
}

/// Where each of `port_ids` that is a NIC of an instance on `host` must be plugged.
pub async fn attachments(
    conn: &mut AnyConnection,
    host: &str,
    port_ids: &[String],
) -> crate::Result<HashMap<String, Attachment>> {
    let rows = sqlx::query(
        "SELECT s.id, n.port_id, n.interface_name FROM servers s \
         JOIN server_nics n ON n.server_id = s.id WHERE s.host = $1",
    )
    .bind(host)
    .fetch_all(conn)
    .await?;
    let mut out = HashMap::new();
    for row in rows {
        let port_id: String = row.try_get("port_id")?;
        if !port_ids.contains(&port_id) {
            continue;
        }
        let server_id: String = row.try_get("id")?;
        out.insert(
            port_id,
            Attachment {
                kind: AttachmentKind::Instance,
                namespace: instance_namespace(&server_id),
                interface_name: row.try_get("interface_name")?,
            },
        );
    }
    Ok(out)
}

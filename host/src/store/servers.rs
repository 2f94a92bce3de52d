//! Instances (`/v2.1/servers`) and their NICs, and what the agent of their host needs of them.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row as _};

use crate::agent::protocol::{HostInstance, HostNic, instance_namespace};
use crate::plugins::bindings::{Attachment, AttachmentKind};

/// The instances placed on `host` (all of them, or only those in `ids`), with their NICs.
pub async fn host_instances(
    conn: &mut AnyConnection,
    host: &str,
    ids: Option<&[String]>,
) -> sqlx::Result<Vec<HostInstance>> {
    let rows = sqlx::query(
        "SELECT s.id, s.name, n.port_id, n.interface_name, p.mac_address \
         FROM servers s JOIN server_nics n ON n.server_id = s.id \
         JOIN ports p ON p.id = n.port_id \
         WHERE s.host = $1 ORDER BY s.id, n.position",
    )
    .bind(host)
    .fetch_all(conn)
    .await?;
    let mut out: Vec<HostInstance> = Vec::new();
    for row in rows {
        let id: String = row.try_get("id")?;
        if ids.is_some_and(|ids| !ids.contains(&id)) {
            continue;
        }
        let nic = HostNic {
            port_id: row.try_get("port_id")?,
            interface_name: row.try_get("interface_name")?,
            mac_address: row.try_get("mac_address")?,
        };
        match out.last_mut() {
            Some(last) if last.id == id => last.nics.push(nic),
            _ => out.push(HostInstance {
                namespace: instance_namespace(&id),
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
) -> sqlx::Result<HashMap<String, Attachment>> {
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

//! Open vSwitch through `ovs-vsctl`: each operation is one ovs-vsctl transaction, which waits
//! until ovs-vswitchd has applied it (so a bridge's device exists when it returns).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use neutrino_model::{OvsBridgeSpec, OvsPortRef, OvsPortSpec, OvsPortType};
use neutrino_runtime::plugins::validate;
use serde_json::Value;
use tokio::process::Command;

use super::OvsPortInfo;

/// How long ovs-vsctl may wait for the database and for ovs-vswitchd.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Vsctl {
    db: Option<PathBuf>,
}

/// An OVSDB string, quoted for ovs-vsctl (which reads JSON string syntax).
fn quoted(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

/// A bridge, port or interface name as an ovs-vsctl argument. ovs-vsctl reads `--` anywhere
/// as the end of a command and a leading `-` as an option, and has no way to quote a
/// positional argument, so a name that could be read so is refused here, whatever checked it
/// before.
fn name(text: &str) -> Result<&str> {
    if !validate::link_name_ok(text) {
        bail!(
            "{} is not an OVS name ovs-vsctl can only read as a name",
            validate::quote(text)
        );
    }
    Ok(text)
}

impl Vsctl {
    pub fn new(db: Option<PathBuf>) -> Vsctl {
        Vsctl { db }
    }

    /// Runs one ovs-vsctl transaction: `commands` joined by `--`.
    async fn run(&self, commands: &[Vec<String>]) -> Result<String> {
        self.run_with(&[], commands).await
    }

    /// The same, with global options (`--format=json`) before the commands.
    async fn run_with(&self, options: &[&str], commands: &[Vec<String>]) -> Result<String> {
        let mut cmd = Command::new("ovs-vsctl");
        cmd.args(options);
        if let Some(db) = &self.db {
            cmd.arg(format!("--db=unix:{}", db.display()));
        }
        cmd.arg(format!("--timeout={}", TIMEOUT.as_secs()));
        for command in commands {
            cmd.arg("--").args(command);
        }
        cmd.kill_on_drop(true);
        let out = tokio::time::timeout(TIMEOUT + Duration::from_secs(5), cmd.output())
            .await
            .context("ovs-vsctl did not finish")?
            .context("run ovs-vsctl (is Open vSwitch installed?)")?;
        if !out.status.success() {
            bail!("ovs-vsctl: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub async fn ensure_bridge(&self, spec: &OvsBridgeSpec) -> Result<()> {
        let name = name(&spec.name)?;
        self.run(&[
            args(&["--may-exist", "add-br", name]),
            args(&[
                "set",
                "Bridge",
                name,
                &format!("datapath_type={}", quoted(&spec.datapath_type)),
            ]),
        ])
        .await?;
        Ok(())
    }

    /// Adds the port, or corrects its tag, type (and patch peer) and Interface external_ids:
    /// the plan's external_ids are the whole map.
    pub async fn ensure_port(&self, spec: &OvsPortSpec) -> Result<()> {
        let (bridge, name) = (name(&spec.bridge)?, name(&spec.name)?);
        let mut commands = vec![args(&["--may-exist", "add-port", bridge, name])];
        commands.push(match spec.tag {
            Some(tag) => args(&["set", "Port", name, &format!("tag={tag}")]),
            None => args(&["clear", "Port", name, "tag"]),
        });
        match &spec.port_type {
            OvsPortType::System => {
                commands.push(args(&["set", "Interface", name, "type=\"\""]));
                commands.push(args(&["remove", "Interface", name, "options", "peer"]));
            }
            OvsPortType::Internal => {
                commands.push(args(&["set", "Interface", name, "type=internal"]));
                commands.push(args(&["remove", "Interface", name, "options", "peer"]));
            }
            OvsPortType::Patch(peer) => commands.push(args(&[
                "set",
                "Interface",
                name,
                "type=patch",
                &format!("options:peer={}", quoted(self::name(peer)?)),
            ])),
        }
        commands.push(args(&["clear", "Interface", name, "external_ids"]));
        if !spec.external_ids.is_empty() {
            let mut set = args(&["set", "Interface", name]);
            for (k, v) in &spec.external_ids {
                set.push(format!("external_ids:{}={}", quoted(k), quoted(v)));
            }
            commands.push(set);
        }
        self.run(&commands).await?;
        Ok(())
    }

    pub async fn remove_port(&self, spec: &OvsPortRef) -> Result<()> {
        self.run(&[args(&[
            "--if-exists",
            "del-port",
            name(&spec.bridge)?,
            name(&spec.name)?,
        ])])
        .await?;
        Ok(())
    }

    /// The Interface's type (`internal`, `patch`, `""`), or `None` if OVS has no such interface.
    pub async fn interface_type(&self, name: &str) -> Result<Option<String>> {
        let out = self
            .run(&[args(&[
                "--if-exists",
                "get",
                "Interface",
                self::name(name)?,
                "type",
            ])])
            .await?;
        let out = out.trim();
        if out.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            serde_json::from_str(out).unwrap_or_else(|_| out.to_string()),
        ))
    }

    /// The ports of a bridge with their tags and Interface external_ids, read in one
    /// transaction.
    pub async fn ports(&self, bridge: &str) -> Result<Vec<OvsPortInfo>> {
        let json = |cols: &str, table: &str| args(&[&format!("--columns={cols}"), "list", table]);
        let mut bridge_cmd = json("ports", "Bridge");
        bridge_cmd.push(name(bridge)?.to_string());
        let out = self
            .run_with(
                &["--format=json"],
                &[
                    bridge_cmd,
                    json("_uuid,name,tag,interfaces", "Port"),
                    json("_uuid,external_ids", "Interface"),
                ],
            )
            .await?;
        let tables: Vec<Value> = serde_json::Deserializer::from_str(&out)
            .into_iter()
            .collect::<Result<_, _>>()
            .context("ovs-vsctl printed something that is not JSON")?;
        let [bridges, ports, interfaces] = tables.as_slice() else {
            bail!("ovs-vsctl printed {} tables, not 3", tables.len());
        };
        let on_bridge: Vec<String> = rows(bridges)
            .first()
            .map(|row| uuids(&row[0]))
            .unwrap_or_default();
        let ids: HashMap<String, BTreeMap<String, String>> = rows(interfaces)
            .iter()
            .map(|row| (uuid(&row[0]), string_map(&row[1])))
            .collect();
        let mut found: Vec<OvsPortInfo> = rows(ports)
            .iter()
            .filter(|row| on_bridge.contains(&uuid(&row[0])))
            .map(|row| OvsPortInfo {
                name: row[1].as_str().unwrap_or_default().to_string(),
                tag: row[2].as_u64().and_then(|t| u16::try_from(t).ok()),
                // A port of one interface (every port we make) carries its external_ids.
                external_ids: uuids(&row[3])
                    .first()
                    .and_then(|i| ids.get(i).cloned())
                    .unwrap_or_default(),
            })
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }
}

fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The `data` rows of one `--format=json` table.
fn rows(table: &Value) -> Vec<Vec<Value>> {
    table["data"]
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r.as_array().cloned()).collect())
        .unwrap_or_default()
}

/// `["uuid", "..."]`.
fn uuid(value: &Value) -> String {
    value[1].as_str().unwrap_or_default().to_string()
}

/// A set of UUIDs: `["uuid", ..]` for one, `["set", [[..], ..]]` for any number.
fn uuids(value: &Value) -> Vec<String> {
    match value[0].as_str() {
        Some("uuid") => vec![uuid(value)],
        Some("set") => value[1]
            .as_array()
            .map(|items| items.iter().map(uuid).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// `["map", [[k, v], ..]]`.
fn string_map(value: &Value) -> BTreeMap<String, String> {
    value[1]
        .as_array()
        .map(|pairs| {
            pairs
                .iter()
                .filter_map(|p| Some((p[0].as_str()?.to_string(), p[1].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

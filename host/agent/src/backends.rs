//! Which of the drivers' agent types this host can serve: an agent reports a type only when the
//! backend that type's plans need answers, so that the server never binds a port to a driver
//! whose wiring would fail here (issue 10, finding 8: an `Open vSwitch agent` reported while
//! `ovs-vsctl` could not reach its database made ovs-hybrid, first in the default order, bind
//! every port, and every plug failed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

/// The agent type of the Open vSwitch drivers (ovs-hybrid's).
pub const OVS_AGENT_TYPE: &str = "Open vSwitch agent";

/// How long the Open vSwitch database may take to answer the probe.
const OVS_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The agent types of `wanted` whose backend answers, and, for each one left out, why.
pub async fn available(
    wanted: &BTreeSet<String>,
    ovs_db: Option<&Path>,
) -> (BTreeSet<String>, BTreeMap<String, String>) {
    let mut up = BTreeSet::new();
    let mut missing = BTreeMap::new();
    for agent_type in wanted {
        let probe = match agent_type.as_str() {
            OVS_AGENT_TYPE => probe_ovs(ovs_db).await,
            // The Linux bridge and FlatDHCP plans need only the kernel (rtnetlink), which an
            // agent allowed to run (root) always has.
            _ => Ok(()),
        };
        match probe {
            Ok(()) => {
                up.insert(agent_type.clone());
            }
            Err(why) => {
                missing.insert(agent_type.clone(), why);
            }
        }
    }
    (up, missing)
}

/// Asks ovsdb-server for the Open_vSwitch table, as every OVS plan's `ovs-vsctl` would reach it.
async fn probe_ovs(db: Option<&Path>) -> Result<(), String> {
    let mut cmd = Command::new("ovs-vsctl");
    if let Some(db) = db {
        cmd.arg(format!("--db=unix:{}", db.display()));
    }
    cmd.arg(format!("--timeout={}", OVS_PROBE_TIMEOUT.as_secs()))
        .args(["--no-wait", "get", "Open_vSwitch", ".", "_uuid"])
        .kill_on_drop(true);
    let out = tokio::time::timeout(OVS_PROBE_TIMEOUT + Duration::from_secs(2), cmd.output())
        .await
        .map_err(|_| "ovs-vsctl did not answer".to_string())?
        .map_err(|e| format!("cannot run ovs-vsctl ({e}): is Open vSwitch installed?"))?;
    if out.status.success() {
        Ok(())
    } else {
        // Its message starts with "ovs-vsctl: ".
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_ovs_database_leaves_the_ovs_type_out_with_the_reason() {
        let wanted: BTreeSet<String> = [OVS_AGENT_TYPE, "Linux bridge agent"]
            .into_iter()
            .map(String::from)
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let (up, missing) = available(&wanted, Some(&dir.path().join("no-such.sock"))).await;
        assert_eq!(
            up.into_iter().collect::<Vec<_>>(),
            vec!["Linux bridge agent".to_string()]
        );
        let why = &missing[OVS_AGENT_TYPE];
        assert!(why.contains("ovs-vsctl"), "{why}");
    }
}

//! TX checksum offload, off on devices inside namespaces: with Open vSwitch's userspace
//! (netdev) datapath, packets leaving a veth or internal port with a partial checksum are
//! never completed, so TCP and UDP (DHCP) fail while ping works.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::Command;

const TIMEOUT: Duration = Duration::from_secs(10);

/// `ethtool -K <device> tx off` inside the namespace.
pub async fn tx_checksum_off(namespace: &str, device: &str) -> Result<()> {
    let run = Command::new("ip")
        .args([
            "netns", "exec", namespace, "ethtool", "-K", device, "tx", "off",
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(TIMEOUT, run)
        .await
        .with_context(|| format!("ethtool on {device} in {namespace} timed out"))?
        .context("run ip netns exec ... ethtool (is ethtool installed?)")?;
    if !out.status.success() {
        bail!(
            "turn TX checksum offload off on {device} in namespace {namespace}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

//! What netlink does not do, run inside a router's namespace: sysctls, `iptables-restore`,
//! `conntrack`, `arping`. Each runs on a thread that entered the namespace (a spawned tool
//! and `/proc/sys/net` follow the calling thread's namespace), so the caller's own thread may
//! be in any namespace.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

use crate::executor::namespace;

/// Section 3.1's sysctls: forwarding, and ARP answered only for addresses of the device asked.
const SYSCTLS: [(&str, &str); 4] = [
    ("net/ipv4/ip_forward", "1"),
    ("net/ipv4/conf/all/arp_ignore", "1"),
    ("net/ipv4/conf/all/arp_announce", "2"),
    ("net/ipv6/conf/all/forwarding", "1"),
];

/// Sets the router sysctls that differ. IPv6 may be off in the kernel: its sysctl is skipped.
pub async fn set_sysctls(ns: &str) -> Result<()> {
    namespace::run_in(ns, || {
        for (key, value) in SYSCTLS {
            let path = format!("/proc/sys/{key}");
            match std::fs::read_to_string(&path) {
                Ok(now) if now.trim() == value => {}
                Ok(_) => std::fs::write(&path, value).with_context(|| format!("write {path}"))?,
                Err(e) if key.starts_with("net/ipv6") => {
                    tracing::debug!("{path}: {e}; no IPv6 here");
                }
                Err(e) => return Err(e).with_context(|| format!("read {path}")),
            }
        }
        Ok(())
    })
    .await
}

/// Replaces the tables named in `text` whole (no `--noflush`): one atomic change.
pub async fn iptables_restore(ns: &str, text: &str) -> Result<()> {
    run(
        ns,
        "iptables-restore",
        &["-w", "10"],
        Some(text.to_string()),
    )
    .await
    .map(|_| ())
}

/// The `nat` and `mangle` tables as `iptables-save` shows them (tests and diagnostics).
pub async fn iptables_save(ns: &str) -> Result<String> {
    let mut text = run(ns, "iptables-save", &["-t", "nat"], None).await?;
    text.push_str(&run(ns, "iptables-save", &["-t", "mangle"], None).await?);
    Ok(text)
}

/// Forgets the connections to and from a floating address: the inbound ones (original
/// destination) and the outbound ones SNATed to it (reply destination). conntrack fails when it
/// deleted nothing, which is fine.
pub async fn forget_connections(ns: &str, address: &str) {
    for side in ["-d", "-q"] {
        match run(ns, "conntrack", &["-D", side, address], None).await {
            Ok(_) => {}
            Err(e)
                if e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) =>
            {
                tracing::warn!("{ns}: connections of {address} kept: {e:#}");
                return;
            }
            Err(e) => tracing::debug!("{ns}: conntrack -D {side} {address}: {e:#}"),
        }
    }
}

/// `arping`, if installed (looked up once by the caller).
pub fn find_arping() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join("arping"))
        .find(|p| p.is_file())
}

/// One gratuitous ARP for `address` from `device`, in the background: neighbours (the
/// external network's gateway, instances) learn the router's MAC for it at once.
pub async fn gratuitous_arp(ns: &str, arping: PathBuf, device: &str, address: &str) {
    let args = ["-U", "-c", "1", "-w", "2", "-I", device, address].map(str::to_string);
    let spawned = namespace::run_in(ns, move || {
        Command::new(&arping)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start arping")
    })
    .await;
    match spawned {
        // Reaped by a thread of its own: arping waits a second for answers that never come.
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => tracing::warn!("{ns}: gratuitous ARP for {address} on {device}: {e:#}"),
    }
}

/// Runs a tool in the namespace with `input` on its standard input; its standard output.
async fn run(ns: &str, tool: &str, args: &[&str], input: Option<String>) -> Result<String> {
    let tool = tool.to_string();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let place = ns.to_string();
    namespace::run_in(ns, move || {
        let mut child = Command::new(&tool)
            .args(&args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {tool}"))?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(text.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "{tool} {} in {place}: {}: {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .await
}

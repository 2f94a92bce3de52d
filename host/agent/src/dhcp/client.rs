//! The instance side: a lease by a real DHCP client, busybox udhcpc, in the instance's
//! namespace, with a client script of our own. The stock scripts must not run there: a network
//! namespace does not isolate files, and they rewrite the host's /etc/resolv.conf. Ours only
//! sets the address, its prefix and the default route on that interface, and prints what it
//! got, which is how [`Lease`] is read.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};

use super::{DhcpError, Result, io_error};

const SCRIPT_NAME: &str = "udhcpc-script";
/// The line our script prints on `bound`/`renew`; nothing else in udhcpc's output starts so.
const LEASE_MARK: &str = "neutrino-lease";

const SCRIPT: &str = r#"#!/bin/sh
# Neutrino's udhcpc script: touches only $interface, in the namespace udhcpc runs in.
case "$1" in
deconfig)
    ip -4 addr flush dev "$interface"
    ip link set dev "$interface" up
    ;;
bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/$subnet" dev "$interface" || exit 1
    if [ -n "$router" ]; then
        set -- $router
        ip route replace default via "$1" dev "$interface" || exit 1
    fi
    echo "neutrino-lease ip=$ip subnet=$subnet router=$router mtu=$mtu hostname=$hostname"
    ;;
esac
exit 0
"#;

/// What the client got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    /// The first router announced.
    pub router: Option<Ipv4Addr>,
    pub mtu: Option<u16>,
    pub hostname: Option<String>,
}

/// A DHCP client whose script lives in a directory of ours.
#[derive(Debug, Clone)]
pub struct DhcpClient {
    udhcpc: PathBuf,
    script: PathBuf,
}

impl DhcpClient {
    /// Writes the client script into `state_dir` (mode 0755).
    pub fn new(state_dir: &Path) -> Result<DhcpClient> {
        std::fs::create_dir_all(state_dir).map_err(io_error(state_dir))?;
        let script = state_dir.join(SCRIPT_NAME);
        super::layout::write_file(&script, SCRIPT)?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .map_err(io_error(&script))?;
        Ok(DhcpClient {
            udhcpc: PathBuf::from("udhcpc"),
            script,
        })
    }

    /// Asks for a lease on `interface` in `namespace`, one discover a second until `timeout`,
    /// and configures the interface with it.
    pub fn lease(&self, namespace: &str, interface: &str, timeout: Duration) -> Result<Lease> {
        let tries = timeout.as_secs().max(1).to_string();
        let child = super::in_namespace(namespace, &self.udhcpc)
            .args([
                "-i", interface, "-f", "-q", "-n", "-t", &tries, "-T", "1", "-s",
            ])
            .arg(&self.script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| DhcpError::Process(format!("cannot run udhcpc: {e}")))?;
        let pid = Pid::from_child(&child);
        let (done, finished) = mpsc::channel();
        // udhcpc waits on its own schedule; this thread lets us give up at the timeout.
        std::thread::spawn(move || {
            let _ = done.send(child.wait_with_output());
        });
        let grace = Duration::from_secs(2);
        let output = match finished.recv_timeout(timeout + grace) {
            Ok(result) => result,
            Err(_) => {
                let _ = kill_process(pid, Signal::KILL);
                let _ = finished.recv();
                return Err(DhcpError::Process(format!(
                    "udhcpc on {interface} in {namespace}: no lease within {timeout:?}"
                )));
            }
        };
        let output = output.map_err(io_error("udhcpc"))?;
        let (status, out) = (output.status, String::from_utf8_lossy(&output.stdout));
        let err = String::from_utf8_lossy(&output.stderr);
        match out.lines().find_map(|l| l.strip_prefix(LEASE_MARK)) {
            Some(line) if status.success() => parse_lease(line),
            _ => Err(DhcpError::Process(format!(
                "udhcpc on {interface} in {namespace} got no lease ({status}): {}",
                err.trim()
            ))),
        }
    }
}

/// Reads ` ip=.. subnet=.. router=.. mtu=.. hostname=..` (empty values are absent).
fn parse_lease(line: &str) -> Result<Lease> {
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .filter(|v| !v.is_empty())
    };
    let bad = || DhcpError::Process(format!("udhcpc script printed '{line}'"));
    let ip = field("ip").and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let mask: Ipv4Addr = field("subnet")
        .and_then(|v| v.parse().ok())
        .ok_or_else(bad)?;
    let prefix_len = ipnet::ipv4_mask_to_prefix(mask).map_err(|_| bad())?;
    let router = match field("router") {
        Some(r) => Some(r.parse().map_err(|_| bad())?),
        None => None,
    };
    let mtu = match field("mtu") {
        Some(m) => Some(m.parse().map_err(|_| bad())?),
        None => None,
    };
    Ok(Lease {
        ip,
        prefix_len,
        router,
        mtu,
        hostname: field("hostname").map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_is_read_from_the_script_line() {
        let lease = parse_lease(
            " ip=10.0.0.5 subnet=255.255.255.0 router=10.0.0.1 mtu=1450 hostname=host-10-0-0-5",
        )
        .unwrap();
        assert_eq!(
            lease,
            Lease {
                ip: "10.0.0.5".parse().unwrap(),
                prefix_len: 24,
                router: Some("10.0.0.1".parse().unwrap()),
                mtu: Some(1450),
                hostname: Some("host-10-0-0-5".into()),
            }
        );
        let bare = parse_lease(" ip=10.0.0.5 subnet=255.255.0.0 router= mtu= hostname=").unwrap();
        assert_eq!(
            (bare.prefix_len, bare.router, bare.mtu, bare.hostname),
            (16, None, None, None)
        );
        assert!(parse_lease(" ip=10.0.0.5 subnet=255.0.255.0").is_err());
        assert!(parse_lease(" subnet=255.255.255.0").is_err());
    }

    #[test]
    fn script_is_ours_and_executable() {
        let dir = tempfile::tempdir().unwrap();
        let client = DhcpClient::new(dir.path()).unwrap();
        let mode = std::fs::metadata(&client.script)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        let text = std::fs::read_to_string(&client.script).unwrap();
        assert!(
            !text.contains("resolv.conf"),
            "the script must not touch host files"
        );
    }
}

//! One agent per network namespace. Two agents sharing a kernel namespace (two `--host` names
//! on one machine) would each sweep the other's taps, bridges and namespaces as stale, since
//! they are named by the same rules. An agent holds an abstract Unix socket, which belongs to
//! the network namespace and goes with the process however it ends; a second agent in the same
//! namespace finds it taken and refuses to start.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};

/// The abstract socket's name.
const NAME: &[u8] = b"neutrino-agent";

/// Held for as long as the agent runs.
pub struct Claim(#[allow(dead_code)] UnixListener);

/// Claims this network namespace for the agent of `host`.
pub fn claim(host: &str) -> anyhow::Result<Claim> {
    let address = SocketAddr::from_abstract_name(NAME)?;
    match UnixListener::bind_addr(&address) {
        Ok(listener) => Ok(Claim(listener)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => anyhow::bail!(
            "another Neutrino agent already runs in this network namespace (it holds the \
             abstract socket @neutrino-agent): the agent of host {host:?} would remove its \
             devices and namespaces, and it ours. Run each host's agent in a network namespace \
             of its own (e.g. under `ip netns exec`), or stop the other one"
        ),
        Err(e) => Err(e.into()),
    }
}

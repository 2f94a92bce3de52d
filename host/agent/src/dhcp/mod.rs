//! DHCP with real dnsmasq, as Neutron's DHCP agent does it: one dnsmasq per network (several
//! for a large one, see `shards`), inside the network's `qdhcp-<network id>` namespace,
//! configured from files in `<state_dir>/dhcp/<network id>/`.
//!
//! Unlike Neutron, which rewrites one hosts file of every port on each port change (its
//! pain point 6.3), every port has its own files: a DHCP host entry in its shard's `host/`
//! (dnsmasq's `--dhcp-hostsdir`), its DNS names in `addn_hosts/` (`--hostsdir`) and its
//! `extra_dhcp_opts` in its shard's `port_opts/` (`--dhcp-optsdir`), see `layout`. dnsmasq
//! reads new files in those directories by inotify, so adding a port writes one or two files
//! and sends no signal; a changed or removed entry needs SIGHUP, because dnsmasq only ever adds
//! records it read from those directories.
//!
//! - [`DhcpManager`]: the server side (files, dnsmasq processes, reload vs restart).
//! - [`client`]: the instance side, a udhcpc run with a client script of our own.
//!
//! Everything here blocks (std::process, std::fs): the agent calls it from a blocking thread.

pub mod client;
mod cmdline;
mod entries;
mod layout;
mod manager;
mod network;
mod options;
mod process;
mod shards;

pub use manager::{DhcpAction, DhcpManager, DhcpOutcome};

use std::path::PathBuf;
use std::time::Duration;

/// Settings of every dnsmasq the manager runs (Neutron's DHCP agent options).
#[derive(Debug, Clone)]
pub struct DhcpOptions {
    /// The dnsmasq binary.
    pub dnsmasq: PathBuf,
    /// dnsmasq-utils' `dhcp_release`: frees the lease of a removed or readdressed port, so
    /// that its address can go to another MAC at once (IPAM hands out the lowest free one).
    pub dhcp_release: PathBuf,
    /// iptables' `iptables-restore`: a network served by several dnsmasq processes needs a
    /// rule in its namespace (see `shards`).
    pub iptables_restore: PathBuf,
    /// Most ports one dnsmasq serves: a larger network is split among several (a power of
    /// two of them), since dnsmasq's cost for one change grows with hosts x leases.
    pub ports_per_dnsmasq: usize,
    /// `dhcp_lease_duration`; None is `infinite`.
    pub lease_time: Option<Duration>,
    /// `dns_domain` of the host names.
    pub domain: String,
    /// How long dnsmasq may take to exit on SIGTERM before it gets SIGKILL.
    pub stop_timeout: Duration,
    /// How long a starting dnsmasq may take to write its pid file (it has then read its
    /// files and bound its sockets).
    pub start_timeout: Duration,
}

impl Default for DhcpOptions {
    fn default() -> Self {
        DhcpOptions {
            dnsmasq: PathBuf::from("dnsmasq"),
            dhcp_release: PathBuf::from("dhcp_release"),
            iptables_restore: PathBuf::from("iptables-restore"),
            ports_per_dnsmasq: 512,
            lease_time: Some(Duration::from_secs(86_400)),
            domain: "openstacklocal".to_string(),
            stop_timeout: Duration::from_secs(5),
            start_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    /// The network, a subnet or a port cannot be turned into dnsmasq configuration.
    #[error("invalid DHCP input: {0}")]
    Invalid(String),
    #[error("network {0} is not configured for DHCP here")]
    UnknownNetwork(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// dnsmasq (or a helper) could not be run, or exited.
    #[error("{0}")]
    Process(String),
}

pub type Result<T, E = DhcpError> = std::result::Result<T, E>;

fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DhcpError {
    let path = path.into();
    move |source| DhcpError::Io { path, source }
}

/// `program` run inside `namespace` (`ip netns exec` execs it in place, so the child is the
/// program itself).
fn in_namespace(namespace: &str, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let mut command = std::process::Command::new("ip");
    command.args(["netns", "exec", namespace]).arg(program);
    command
}

fn invalid(text: impl Into<String>) -> DhcpError {
    DhcpError::Invalid(text.into())
}

#[cfg(test)]
mod tests;

//! A large network's ports are split among several dnsmasq processes ("shards"), because
//! dnsmasq's cost for one changed host grows with hosts x leases: every new or re-read host
//! file makes it re-derive every lease from every host (`lease_update_from_configs`). With
//! shards of at most a few hundred ports, one change costs a shard a few hundred squared.
//!
//! All shards listen on the DHCP port's interface (dnsmasq's DHCP socket is SO_REUSEPORT
//! under `--bind-interfaces`) and each ignores the MACs it does not know, so a broadcast
//! reaches them all and only the port's own shard answers. A unicast to the server's address
//! (a renewal, a release) would reach only one socket of the group, chosen by hash: in the
//! namespace, such packets are turned into broadcasts (a DNAT to 255.255.255.255, on
//! arrival and for dnsmasq-utils' `dhcp_release` from inside) so that they reach every shard.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;

use super::{DhcpError, Result};

/// Never more processes than this per network, however large.
pub const MAX_SHARDS: usize = 64;

/// The number of shards for `ports` ports at most `per_shard` each: a power of two, so that
/// a growing network is split again only when it doubles.
pub fn wanted(ports: usize, per_shard: usize) -> usize {
    ports
        .div_ceil(per_shard.max(1))
        .max(1)
        .next_power_of_two()
        .min(MAX_SHARDS)
}

/// Whether `current` shards may stay for `ports` ports: until they hold more than
/// `per_shard` each, or, shrinking, until the network is down to a quarter of what they may
/// hold, so that a network near a boundary does not restart every process back and forth.
pub fn keep(current: usize, ports: usize, per_shard: usize) -> bool {
    let capacity = current * per_shard.max(1);
    wanted(ports, per_shard) == current
        || (ports <= capacity && (current == 1 || ports > capacity / 4))
}

/// The shard of a port: a hash of its id (FNV-1a, stable across runs, since the files on
/// disk outlive the agent).
pub fn of(port_id: &str, shards: usize) -> usize {
    let hash = port_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % shards as u64) as usize
}

/// The `raw` and `nat` tables of the `qdhcp-` namespace (ours alone): unicast DHCP to one of
/// the DHCP port's addresses becomes a broadcast; both tables are empty when `server_ips` is.
/// The NAT is stateful, so dnsmasq's own answers must not be tracked: an answer to a client
/// would otherwise make a connection whose reply direction is that client's next renewal,
/// which would then pass untranslated.
pub fn tables(server_ips: &[Ipv4Addr]) -> String {
    let mut raw = String::from("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    let mut nat = String::from(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         :POSTROUTING ACCEPT [0:0]\n",
    );
    if !server_ips.is_empty() {
        raw.push_str("-A OUTPUT -p udp -m udp --sport 67 -j CT --notrack\n");
    }
    for ip in server_ips {
        for chain in ["PREROUTING", "OUTPUT"] {
            nat.push_str(&format!(
                "-A {chain} -d {ip}/32 -p udp -m udp --dport 67 -j DNAT --to-destination 255.255.255.255\n"
            ));
        }
    }
    format!("{raw}COMMIT\n{nat}COMMIT\n")
}

/// Replaces the namespace's tables in one `iptables-restore`.
pub fn apply_tables(namespace: &str, iptables_restore: &Path, table: &str) -> Result<()> {
    let failed = |e: String| {
        DhcpError::Process(format!(
            "{} in {namespace}: {e}",
            iptables_restore.display()
        ))
    };
    let mut child = super::in_namespace(namespace, iptables_restore)
        .arg("-w")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(table.as_bytes())
            .map_err(|e| failed(e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

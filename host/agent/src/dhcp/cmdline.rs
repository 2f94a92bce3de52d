//! dnsmasq's command line for one process of a network (Neutron's, section 4.1 of the
//! reference, with one file per port in directories, and the options this machine needs: see
//! machine.md). dnsmasq reads its ranges only at start, so a different command line means a
//! restart.

use super::DhcpOptions;
use super::layout::{NetworkDir, ProcessDir};
use super::network::Subnets;

/// Neutron's `dnsmasq_lease_max`.
const LEASE_MAX: u128 = 1 << 24;

/// What one dnsmasq of a network does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Role {
    /// The only process: DHCP for every port, and DNS (Neutron's one dnsmasq).
    All,
    /// DHCP for a share of the ports only, silent for every other MAC (`tag:!known` is
    /// ignored rather than refused, so it never answers a client of another shard), no DNS.
    Shard,
    /// DNS only, for every port's names, beside the shards.
    Dns,
}

impl Role {
    fn serves_dhcp(self) -> bool {
        self != Role::Dns
    }
    fn serves_dns(self) -> bool {
        self != Role::Shard
    }
}

pub fn dnsmasq_args(
    mtu: u32,
    subnets: &Subnets,
    interface: &str,
    net: &NetworkDir,
    (role, dir): (Role, &ProcessDir),
    options: &DhcpOptions,
) -> Vec<String> {
    let path = |p: std::path::PathBuf| p.display().to_string();
    let mut args = vec![
        "--conf-file=/dev/null".to_string(),
        "--keep-in-foreground".to_string(),
        "--no-hosts".to_string(),
        "--no-resolv".to_string(),
        format!("--pid-file={}", path(dir.pid())),
    ];
    if role.serves_dns() {
        args.push(format!("--hostsdir={}", path(net.names())));
    } else {
        args.push("--port=0".to_string());
    }
    if role.serves_dhcp() {
        args.extend([
            format!("--dhcp-hostsdir={}", path(dir.hosts())),
            format!("--dhcp-optsfile={}", path(net.opts())),
            format!("--dhcp-optsdir={}", path(dir.port_opts())),
            format!("--dhcp-leasefile={}", path(dir.leases())),
            "--dhcp-match=set:ipxe,175".to_string(),
            "--dhcp-userclass=set:ipxe6,iPXE".to_string(),
        ]);
    }
    if role == Role::Shard {
        args.push("--dhcp-ignore=tag:!known".to_string());
    }
    args.extend([
        "--bind-interfaces".to_string(),
        format!("--interface={interface}"),
        "--except-interface=lo".to_string(),
    ]);
    if role.serves_dhcp() {
        dhcp_ranges(&mut args, mtu, subnets, options);
    }
    args.push(format!("--domain={}", options.domain));
    args
}

fn dhcp_ranges(args: &mut Vec<String>, mtu: u32, subnets: &Subnets, options: &DhcpOptions) {
    let lease = match options.lease_time {
        Some(t) => format!("{}s", t.as_secs()),
        None => "infinite".to_string(),
    };
    let mut possible_leases: u128 = 0;
    for s in subnets.0.iter().filter(|s| s.served()) {
        let shape = match s.net {
            ipnet::IpNet::V4(n) => n.netmask().to_string(),
            ipnet::IpNet::V6(n) => n.prefix_len().to_string(),
        };
        args.push(format!(
            "--dhcp-range=set:{},{},static,{shape},{lease}",
            s.tag(),
            s.net.network()
        ));
        let host_bits = u32::from(s.net.max_prefix_len() - s.net.prefix_len());
        possible_leases =
            possible_leases.saturating_add(1u128.checked_shl(host_bits).unwrap_or(u128::MAX));
    }
    if mtu > 0 {
        args.push(format!("--dhcp-option-force=option:mtu,{mtu}"));
    }
    args.push(format!(
        "--dhcp-lease-max={}",
        possible_leases.min(LEASE_MAX)
    ));
}

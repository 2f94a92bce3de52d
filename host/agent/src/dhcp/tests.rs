//! The file formats and the command line, from protocol values (no root, no dnsmasq).

use neutrino_model::FixedIp;

use super::DhcpOptions;
use super::cmdline::{Role, dnsmasq_args};
use super::entries::{has_entries, port_files, v4_leases};
use super::layout::NetworkDir;
use super::network::{Port, Subnets, check_id, check_interface};
use super::options::{format_option, subnet_options};
use super::shards;
use neutrino_proto::{DhcpSubnet, ExtraDhcpOpt, HostPort};

const V4: &str = "5e7b3c1a-0000-4000-8000-000000000004";
const V4B: &str = "5e7b3c1a-0000-4000-8000-00000000000b";
const V6: &str = "5e7b3c1a-0000-4000-8000-000000000006";
const PORT: &str = "3f1c2a9e-7b44-4f7e-9a51-0c8d2b6f1e11";

fn v4(id: &str, cidr: &str, gateway: Option<&str>) -> DhcpSubnet {
    DhcpSubnet {
        id: id.into(),
        ip_version: 4,
        cidr: cidr.into(),
        gateway_ip: gateway.map(Into::into),
        enable_dhcp: true,
        dns_nameservers: vec![],
        host_routes: vec![],
        ipv6_address_mode: None,
    }
}

fn v6(mode: Option<&str>) -> DhcpSubnet {
    DhcpSubnet {
        id: V6.into(),
        ip_version: 6,
        cidr: "2001:db8::/64".into(),
        gateway_ip: Some("2001:db8::1".into()),
        enable_dhcp: true,
        dns_nameservers: vec!["2001:4860:4860::8888".into()],
        host_routes: vec![],
        ipv6_address_mode: mode.map(Into::into),
    }
}

fn port(ips: &[(&str, &str)]) -> HostPort {
    HostPort {
        id: PORT.into(),
        network_id: "n1".into(),
        mac_address: "FA:16:3E:8F:9D:65".into(),
        fixed_ips: ips
            .iter()
            .map(|(s, ip)| FixedIp {
                subnet_id: (*s).into(),
                ip_address: (*ip).into(),
            })
            .collect(),
        device_owner: "compute:nova".into(),
        device_id: "vm-1".into(),
        admin_state_up: true,
        status: "ACTIVE".into(),
        hostname: "host-10-0-0-5".into(),
        extra_dhcp_opts: vec![],
        binding: None,
        revision_number: 1,
        filter: None,
    }
}

fn opt(name: &str, value: &str, ip_version: u8) -> ExtraDhcpOpt {
    ExtraDhcpOpt {
        opt_name: name.into(),
        opt_value: value.into(),
        ip_version,
    }
}

#[test]
fn host_entry_and_names_of_a_plain_port() {
    let subnets = Subnets::parse(&[v4(V4, "10.0.0.0/24", Some("10.0.0.1"))]).unwrap();
    let p = port(&[(V4, "10.0.0.5")]);
    let files = port_files(&Port::parse(&p, &subnets).unwrap(), "openstacklocal");
    assert_eq!(
        files.host,
        "fa:16:3e:8f:9d:65,host-10-0-0-5.openstacklocal.,10.0.0.5\n"
    );
    assert_eq!(
        files.names,
        "10.0.0.5\thost-10-0-0-5.openstacklocal. host-10-0-0-5\n"
    );
    assert_eq!(files.opts, "");
    let leases = v4_leases(&Port::parse(&p, &subnets).unwrap());
    assert_eq!(
        leases,
        vec![("fa:16:3e:8f:9d:65".to_string(), "10.0.0.5".parse().unwrap())]
    );
}

#[test]
fn extra_options_tag_the_host_and_client_id_names_it() {
    let subnets = Subnets::parse(&[v4(V4, "10.0.0.0/24", Some("10.0.0.1")), v6(None)]).unwrap();
    let mut p = port(&[(V4, "10.0.0.5"), (V6, "2001:db8::5")]);
    p.hostname = "web-1".into();
    p.extra_dhcp_opts = vec![
        opt("bootfile-name", "pxelinux.0", 4),
        opt("client-id", "01:aa", 4),
        opt("67", "x.efi", 4),
        opt("tag:ipxe,bootfile-name", "http://boot/ipxe", 4),
        opt("dns-server", "[2001:db8::53]", 6),
    ];
    let files = port_files(&Port::parse(&p, &subnets).unwrap(), "openstacklocal");
    assert_eq!(
        files.host,
        format!(
            "fa:16:3e:8f:9d:65,id:01:aa,web-1.openstacklocal.,10.0.0.5,set:port-{PORT}\n\
             fa:16:3e:8f:9d:65,tag:dhcpv6,id:01:aa,web-1.openstacklocal.,[2001:db8::5],set:port-{PORT}\n"
        )
    );
    assert_eq!(
        files.opts,
        format!(
            "tag:port-{PORT},option:bootfile-name,pxelinux.0\n\
             tag:port-{PORT},67,x.efi\n\
             tag:port-{PORT},tag:ipxe,option:bootfile-name,http://boot/ipxe\n\
             tag:port-{PORT},option6:dns-server,[2001:db8::53]\n"
        )
    );
    assert_eq!(
        files.names,
        "10.0.0.5\tweb-1.openstacklocal. web-1\n2001:db8::5\tweb-1.openstacklocal. web-1\n"
    );
}

#[test]
fn generated_names_follow_each_address() {
    let subnets =
        Subnets::parse(&[v4(V4, "10.0.0.0/24", None), v6(Some("dhcpv6-stateful"))]).unwrap();
    let p = port(&[(V4, "10.0.0.5"), (V6, "2001:db8::5")]);
    let files = port_files(&Port::parse(&p, &subnets).unwrap(), "example.org");
    assert_eq!(
        files.host,
        "fa:16:3e:8f:9d:65,host-10-0-0-5.example.org.,10.0.0.5\n\
         fa:16:3e:8f:9d:65,tag:dhcpv6,host-2001-db8--5.example.org.,[2001:db8::5]\n"
    );
}

#[test]
fn stateless_slaac_and_dhcp_disabled_subnets() {
    let mut off = v4(V4B, "10.0.1.0/24", Some("10.0.1.1"));
    off.enable_dhcp = false;
    let mut p = port(&[(V4B, "10.0.1.5"), (V6, "2001:db8::5")]);
    p.hostname = String::new();
    // Stateless: options only, and only when the port has some.
    let subnets = Subnets::parse(&[off.clone(), v6(Some("dhcpv6-stateless"))]).unwrap();
    let files = port_files(&Port::parse(&p, &subnets).unwrap(), "openstacklocal");
    assert_eq!(files.host, "");
    assert_eq!(
        files.names,
        "2001:db8::5\thost-2001-db8--5.openstacklocal. host-2001-db8--5\n"
    );
    p.extra_dhcp_opts = vec![opt("ntp-server", "[2001:db8::123]", 6)];
    let files = port_files(&Port::parse(&p, &subnets).unwrap(), "openstacklocal");
    assert_eq!(
        files.host,
        format!("fa:16:3e:8f:9d:65,tag:dhcpv6,set:port-{PORT}\n")
    );
    // SLAAC: nothing at all from dnsmasq.
    let subnets = Subnets::parse(&[off, v6(Some("slaac"))]).unwrap();
    let files = port_files(&Port::parse(&p, &subnets).unwrap(), "openstacklocal");
    assert_eq!((files.host.as_str(), files.names.as_str()), ("", ""));
}

#[test]
fn neutron_skips_its_own_ports() {
    for owner in [
        "network:dhcp",
        "network:floatingip",
        "network:router_ha_interface",
        "network:distributed",
    ] {
        assert!(!has_entries(owner), "{owner}");
    }
    for owner in ["", "compute:nova", "network:router_interface"] {
        assert!(has_entries(owner), "{owner}");
    }
}

#[test]
fn subnet_options_follow_neutron() {
    let mut routed = v4(V4, "10.0.0.0/24", Some("10.0.0.1"));
    routed.dns_nameservers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
    routed.host_routes = vec![("10.1.0.0/24".into(), "10.0.0.254".into())];
    let isolated = v4(V4B, "10.0.1.0/24", None);
    let subnets = Subnets::parse(&[routed, isolated, v6(None)]).unwrap();
    let router = [(V4, "10.0.0.1".parse().unwrap())];
    let opts = subnet_options(
        &subnets,
        router.iter().map(|(s, ip)| (*s, *ip)),
        "openstacklocal",
        false,
    );
    let routes_a =
        "10.0.1.0/24,0.0.0.0,10.1.0.0/24,10.0.0.254,169.254.169.254/32,10.0.0.1,0.0.0.0/0,10.0.0.1";
    assert_eq!(
        opts,
        format!(
            "tag:subnet-{V4},option:dns-server,8.8.8.8,8.8.4.4\n\
             tag:subnet-{V4},option:classless-static-route,{routes_a}\n\
             tag:subnet-{V4},249,{routes_a}\n\
             tag:subnet-{V4},option:router,10.0.0.1\n\
             tag:subnet-{V4B},option:classless-static-route,10.0.0.0/24,0.0.0.0\n\
             tag:subnet-{V4B},249,10.0.0.0/24,0.0.0.0\n\
             tag:subnet-{V4B},option:router\n\
             tag:subnet-{V6},option6:dns-server,[2001:4860:4860::8888]\n\
             tag:subnet-{V6},option6:domain-search,openstacklocal\n"
        )
    );
}

#[test]
fn isolated_subnet_without_routes_says_only_its_router() {
    let mut s = v4(V4, "10.0.0.0/24", Some("10.0.0.1"));
    s.dns_nameservers = vec!["0.0.0.0".into()];
    let subnets = Subnets::parse(&[s.clone()]).unwrap();
    let opts = subnet_options(&subnets, std::iter::empty(), "openstacklocal", false);
    assert_eq!(
        opts,
        format!("tag:subnet-{V4},option:dns-server\ntag:subnet-{V4},option:router,10.0.0.1\n")
    );
    // A default host route stands in for a missing gateway.
    s.gateway_ip = None;
    s.dns_nameservers = vec![];
    s.host_routes = vec![("0.0.0.0/0".into(), "10.0.0.254".into())];
    let subnets = Subnets::parse(&[s]).unwrap();
    let opts = subnet_options(&subnets, std::iter::empty(), "x", false);
    assert_eq!(opts, format!("tag:subnet-{V4},option:router,10.0.0.254\n"));
    // With DNS served beside the DHCP processes, the namespace's address is said explicitly.
    let opts = subnet_options(&subnets, std::iter::empty(), "x", true);
    assert_eq!(
        opts,
        format!(
            "tag:subnet-{V4},option:dns-server,0.0.0.0\ntag:subnet-{V4},option:router,10.0.0.254\n"
        )
    );
}

#[test]
fn option_names_numbers_and_extra_tags() {
    assert_eq!(
        format_option(4, "t", "router", &["10.0.0.1"]),
        "tag:t,option:router,10.0.0.1"
    );
    assert_eq!(format_option(4, "t", "249", &["a"]), "tag:t,249,a");
    assert_eq!(format_option(6, "t", "23", &["a"]), "tag:t,option6:23,a");
    assert_eq!(
        format_option(4, "t", "tag:!ipxe,67", &["f"]),
        "tag:t,tag:!ipxe,67,f"
    );
    assert_eq!(format_option(4, "t", "router", &[]), "tag:t,option:router");
}

#[test]
fn command_line_per_network() {
    let mut stateless = v6(Some("dhcpv6-stateless"));
    stateless.id = "s6".into();
    let mut off = v4(V4B, "10.0.1.0/24", None);
    off.enable_dhcp = false;
    let subnets = Subnets::parse(&[
        v4(V4, "10.0.0.0/24", Some("10.0.0.1")),
        off,
        stateless,
        v6(Some("slaac")),
    ])
    .unwrap();
    let dir = NetworkDir::new(std::path::Path::new("/var/lib/neutrino"), "n1");
    let args = dnsmasq_args(
        1450,
        &subnets,
        "ns-3f1c2a9e-7b",
        &dir,
        (Role::All, &dir.shard(0)),
        &DhcpOptions::default(),
    );
    let d = "/var/lib/neutrino/dhcp/n1";
    let expected: Vec<String> = [
        "--conf-file=/dev/null",
        "--keep-in-foreground",
        "--no-hosts",
        "--no-resolv",
        &format!("--pid-file={d}/shard-0/pid"),
        &format!("--hostsdir={d}/addn_hosts"),
        &format!("--dhcp-hostsdir={d}/shard-0/host"),
        &format!("--dhcp-optsfile={d}/opts"),
        &format!("--dhcp-optsdir={d}/shard-0/port_opts"),
        &format!("--dhcp-leasefile={d}/shard-0/leases"),
        "--dhcp-match=set:ipxe,175",
        "--dhcp-userclass=set:ipxe6,iPXE",
        "--bind-interfaces",
        "--interface=ns-3f1c2a9e-7b",
        "--except-interface=lo",
        &format!("--dhcp-range=set:subnet-{V4},10.0.0.0,static,255.255.255.0,86400s"),
        "--dhcp-range=set:subnet-s6,2001:db8::,static,64,86400s",
        "--dhcp-option-force=option:mtu,1450",
        &format!("--dhcp-lease-max={}", 1u32 << 24),
        "--domain=openstacklocal",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(args, expected);
    // One IPv4 subnet: its size bounds the leases; an infinite lease time is dnsmasq's word.
    let one = Subnets::parse(&[v4(V4, "10.0.0.0/22", None)]).unwrap();
    let options = DhcpOptions {
        lease_time: None,
        ..DhcpOptions::default()
    };
    let args = dnsmasq_args(0, &one, "ns-x", &dir, (Role::All, &dir.shard(0)), &options);
    assert!(args.contains(&"--dhcp-lease-max=1024".to_string()));
    assert!(
        args.iter()
            .any(|a| a.ends_with(",static,255.255.252.0,infinite"))
    );
    assert!(!args.iter().any(|a| a.contains("option:mtu")));
}

#[test]
fn a_split_network_has_dhcp_shards_and_one_dns_process() {
    let subnets = Subnets::parse(&[v4(V4, "10.0.0.0/24", Some("10.0.0.1"))]).unwrap();
    let dir = NetworkDir::new(std::path::Path::new("/s"), "n1");
    let options = DhcpOptions::default();
    let shard = dnsmasq_args(
        0,
        &subnets,
        "ns-x",
        &dir,
        (Role::Shard, &dir.shard(3)),
        &options,
    );
    let has = |args: &[String], a: &str| args.iter().any(|x| x == a);
    // A shard: its own hosts, options and leases, silent for MACs it does not know, no DNS.
    assert!(has(&shard, "--port=0"));
    assert!(has(&shard, "--dhcp-ignore=tag:!known"));
    assert!(has(&shard, "--dhcp-hostsdir=/s/dhcp/n1/shard-3/host"));
    assert!(has(&shard, "--dhcp-leasefile=/s/dhcp/n1/shard-3/leases"));
    assert!(has(&shard, "--dhcp-optsfile=/s/dhcp/n1/opts"));
    assert!(!shard.iter().any(|a| a.starts_with("--hostsdir")));
    // The DNS process: every port's names, no DHCP at all.
    let dns = dnsmasq_args(0, &subnets, "ns-x", &dir, (Role::Dns, &dir.dns()), &options);
    assert!(has(&dns, "--hostsdir=/s/dhcp/n1/addn_hosts"));
    assert!(has(&dns, "--pid-file=/s/dhcp/n1/dns/pid"));
    assert!(
        !dns.iter()
            .any(|a| a.starts_with("--dhcp") || a == "--port=0")
    );
}

#[test]
fn shards_double_and_merge_late() {
    assert_eq!(shards::wanted(0, 512), 1);
    assert_eq!(shards::wanted(512, 512), 1);
    assert_eq!(shards::wanted(513, 512), 2);
    assert_eq!(shards::wanted(10_000, 512), 32);
    assert_eq!(shards::wanted(1_000_000, 512), shards::MAX_SHARDS);
    // 32 shards of 512 hold 16,384 ports; they merge below a quarter of that.
    assert!(shards::keep(32, 10_000, 512) && shards::keep(32, 16_384, 512));
    assert!(shards::keep(32, 4_097, 512) && !shards::keep(32, 4_096, 512));
    assert!(!shards::keep(32, 16_385, 512) && !shards::keep(16, 10_000, 512));
    // One process stays one until it outgrows 512; two merge back only at 256.
    assert!(shards::keep(1, 0, 512) && shards::keep(1, 512, 512) && !shards::keep(1, 513, 512));
    assert!(shards::keep(2, 257, 512) && !shards::keep(2, 256, 512));
    // At the most shards there are, a larger network keeps them.
    assert!(shards::keep(shards::MAX_SHARDS, 1_000_000, 512));
    // Stable and spread: 1,000 ids over 8 shards, each shard gets a fair share.
    let mut counts = [0usize; 8];
    for n in 0..1000 {
        let id = format!("{n:08x}-7b44-4f7e-9a51-0c8d2b6f1e11");
        assert_eq!(shards::of(&id, 8), shards::of(&id, 8));
        counts[shards::of(&id, 8)] += 1;
    }
    assert!(counts.iter().all(|c| (80..170).contains(c)), "{counts:?}");
    assert_eq!(shards::of(PORT, 1), 0);
}

#[test]
fn unicast_dhcp_becomes_broadcast_in_a_split_network() {
    let tables = shards::tables(&["10.0.0.2".parse().unwrap()]);
    assert!(tables.starts_with("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"));
    assert!(tables.contains("-A OUTPUT -p udp -m udp --sport 67 -j CT --notrack\nCOMMIT\n*nat\n"));
    for chain in ["PREROUTING", "OUTPUT"] {
        assert!(tables.contains(&format!(
            "-A {chain} -d 10.0.0.2/32 -p udp -m udp --dport 67 -j DNAT --to-destination 255.255.255.255\n"
        )));
    }
    assert!(tables.ends_with("COMMIT\n"));
    // No address: both tables are emptied.
    assert!(!shards::tables(&[]).contains("-A "));
}

#[test]
fn bad_input_is_refused_clearly() {
    let subnets = Subnets::parse(&[v4(V4, "10.0.0.0/24", None)]).unwrap();
    let mut p = port(&[(V4, "10.0.1.5")]);
    let e = Port::parse(&p, &subnets).err().unwrap().to_string();
    assert!(e.contains("10.0.1.5 is not in subnet"), "{e}");
    p.fixed_ips[0].ip_address = "10.0.0.5".into();
    p.mac_address = "fa:16:3e".into();
    assert!(
        Port::parse(&p, &subnets)
            .err()
            .unwrap()
            .to_string()
            .contains("not a MAC")
    );
    p.mac_address = "fa:16:3e:00:00:01".into();
    p.extra_dhcp_opts = vec![opt("bootfile-name", "a\ndhcp-range=evil", 4)];
    assert!(
        Port::parse(&p, &subnets)
            .err()
            .unwrap()
            .to_string()
            .contains("control character")
    );
    p.extra_dhcp_opts = vec![];
    p.fixed_ips[0].subnet_id = "other".into();
    assert!(
        Port::parse(&p, &subnets)
            .err()
            .unwrap()
            .to_string()
            .contains("not a subnet of the network")
    );
    assert!(check_id("port", "../../etc").is_err());
    assert!(check_interface("a-name-too-long-x").is_err());
    let mut s = v4(V4, "10.0.0.0/24", Some("2001:db8::1"));
    assert!(
        Subnets::parse(&[s.clone()])
            .err()
            .unwrap()
            .to_string()
            .contains("is not IPv4")
    );
    s.gateway_ip = None;
    s.ipv6_address_mode = None;
    s.host_routes = vec![("2001:db8::/64".into(), "10.0.0.1".into())];
    assert!(Subnets::parse(&[s]).is_err());
}

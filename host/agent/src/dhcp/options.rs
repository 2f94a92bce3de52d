//! The `opts` file: each served subnet's options under its tag, per Neutron's rules (DNS
//! servers, classless static routes as options 121 and 249, the router), and the formatting of
//! one option line shared with the ports' `extra_dhcp_opts`.

use std::net::IpAddr;

use super::network::{Mode, Subnets};

/// Where instances reach the metadata service (through the gateway on a routed subnet).
const METADATA_CIDR: &str = "169.254.169.254/32";
/// Windows' classless static routes option.
const WIN2K3_STATIC_ROUTES: &str = "249";

/// One options line: `tag:<tag>[,<extra tags>],option:<name>[,<args>]`. A numeric IPv4 option
/// stays numeric; IPv6 options are `option6:`. An option name may carry extra tags in front
/// (`tag:ipxe,bootfile-name`), as Neutron accepts them.
pub fn format_option(ip_version: u8, tag: &str, option: &str, args: &[&str]) -> String {
    let (extra_tags, option) = match option.rsplit_once(',') {
        Some((tags, option)) if tags.starts_with("tag:") => (Some(tags), option),
        _ => (None, option),
    };
    let option = if ip_version == 6 {
        format!("option6:{option}")
    } else if option.chars().all(|c| c.is_ascii_digit()) {
        option.to_string()
    } else {
        format!("option:{option}")
    };
    let mut parts = vec![format!("tag:{tag}")];
    parts.extend(extra_tags.map(str::to_string));
    parts.push(option);
    parts.extend(args.iter().map(|a| a.to_string()));
    parts.join(",")
}

/// The `opts` file. `router_ips` are the addresses of the network's router interfaces, as
/// (subnet id, address): a subnet whose gateway is among them is routed, the others are
/// isolated (and get no metadata route, since we run no metadata proxy in the namespace).
/// `dns_beside`: DNS is served by another dnsmasq than the DHCP ones (a sharded network), so
/// a subnet without DNS servers announces this namespace's address explicitly (dnsmasq's
/// `0.0.0.0` / `[::]`), which a DHCP-only dnsmasq would not do by itself.
pub fn subnet_options<'a>(
    subnets: &Subnets,
    router_ips: impl Iterator<Item = (&'a str, IpAddr)> + Clone,
    domain: &str,
    dns_beside: bool,
) -> String {
    let mut lines = Vec::new();
    for subnet in subnets
        .0
        .iter()
        .filter(|s| s.enable_dhcp && s.mode != Mode::Nothing)
    {
        let v = subnet.version;
        let tag = subnet.tag();
        let unspecified = if v == 4 { "0.0.0.0" } else { "::" };
        if let [only] = subnet.dns_nameservers.as_slice()
            && only.to_string() == unspecified
        {
            // Neutron's way of saying "announce no DNS server".
            lines.push(format_option(v, &tag, "dns-server", &[]));
        } else if !subnet.dns_nameservers.is_empty() {
            let servers: Vec<String> = subnet
                .dns_nameservers
                .iter()
                .map(|d| {
                    if v == 6 {
                        format!("[{d}]")
                    } else {
                        d.to_string()
                    }
                })
                .collect();
            lines.push(format_option(v, &tag, "dns-server", &[&servers.join(",")]));
        } else if dns_beside {
            let this_host = if v == 6 { "[::]" } else { "0.0.0.0" };
            lines.push(format_option(v, &tag, "dns-server", &[this_host]));
        }
        if v == 6 {
            lines.push(format_option(v, &tag, "domain-search", &[domain]));
            continue;
        }
        let mut gateway = subnet.gateway.map(|g| g.to_string());
        let mut routes = Vec::new();
        for (dest, nexthop) in &subnet.host_routes {
            if dest.prefix_len() == 0 {
                gateway.get_or_insert_with(|| nexthop.to_string());
            } else {
                routes.push(format!("{dest},{nexthop}"));
            }
        }
        let isolated = !router_ips
            .clone()
            .any(|(sid, ip)| sid == subnet.id && Some(ip) == subnet.gateway);
        if let (false, Some(g)) = (isolated, &gateway) {
            routes.push(format!("{METADATA_CIDR},{g}"));
        }
        // The network's other IPv4 subnets are on-link, and come first (Neutron inserts each
        // at the front, so in reverse order).
        for other in subnets
            .0
            .iter()
            .filter(|s| s.version == 4 && s.net != subnet.net)
        {
            routes.insert(0, format!("{},0.0.0.0", other.net));
        }
        if !routes.is_empty() {
            if let Some(g) = &gateway {
                routes.push(format!("0.0.0.0/0,{g}"));
            }
            let routes = routes.join(",");
            lines.push(format_option(v, &tag, "classless-static-route", &[&routes]));
            lines.push(format_option(v, &tag, WIN2K3_STATIC_ROUTES, &[&routes]));
        }
        // Always said: without it dnsmasq would announce itself as the router.
        match &gateway {
            Some(g) => lines.push(format_option(v, &tag, "router", &[g])),
            None => lines.push(format_option(v, &tag, "router", &[])),
        }
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

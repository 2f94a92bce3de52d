//! Address arithmetic for subnets and IPAM, free of HTTP and SQL: CIDRs, default gateways and
//! allocation pools, which addresses a port may hold, EUI-64, free ranges, and subnet pools'
//! prefixes (`prefixes`).
//!
//! Addresses of both families are handled as `u128` (IPv4 in the low 32 bits); the store keys
//! them as 32 hex digits so that text order is numeric order on every database.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

pub mod prefixes;

/// An inclusive range of addresses (an allocation pool, or a free range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Range {
    pub first: u128,
    pub last: u128,
}

pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

pub fn from_u128(n: u128, version: u8) -> IpAddr {
    if version == 4 {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

/// The store's key of an address: fixed-width hex, so that text order is numeric order.
pub fn key(n: u128) -> String {
    format!("{n:032x}")
}

pub fn from_key(k: &str) -> Option<u128> {
    u128::from_str_radix(k, 16).ok()
}

pub fn version_of(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 4 } else { 6 }
}

/// Parses a CIDR of the given IP version, dropping host bits (`10.0.0.5/24` -> `10.0.0.0/24`).
/// The error is Neutron's reason text.
pub fn parse_cidr(text: &str, version: u8) -> Result<IpNet, String> {
    let net: IpNet = text
        .parse()
        .map_err(|_| format!("{text} is not in a CIDR format."))?;
    let net = net.trunc();
    if version_of(net.addr()) != version {
        return Err(format!(
            "cidr '{net}' does not match the ip_version '{version}'"
        ));
    }
    if net.prefix_len() == 0 {
        return Err(format!(
            "{text} is not a valid CIDR: a prefix length of 0 is not allowed."
        ));
    }
    Ok(net)
}

/// The first and last address of a network.
pub fn bounds(net: &IpNet) -> Range {
    Range {
        first: to_u128(net.network()),
        last: to_u128(net.broadcast()),
    }
}

/// Addresses a port may hold: the whole CIDR for /31 and /32 (and their IPv6 equivalents),
/// else without the network address and, for IPv4, without the broadcast address.
pub fn usable(net: &IpNet) -> Range {
    let Range { first, last } = bounds(net);
    match net {
        IpNet::V4(v4) if v4.prefix_len() >= 31 => Range { first, last },
        IpNet::V4(_) => Range {
            first: first + 1,
            last: last - 1,
        },
        IpNet::V6(v6) if v6.prefix_len() >= 127 => Range { first, last },
        IpNet::V6(_) => Range {
            first: first + 1,
            last,
        },
    }
}

/// Whether `ip` may be given to a port on `net` (inside, and not a reserved address).
pub fn is_usable(net: &IpNet, ip: IpAddr) -> bool {
    let u = usable(net);
    net.contains(&ip) && (u.first..=u.last).contains(&to_u128(ip))
}

/// The gateway a subnet gets when none is given: the first host of an IPv4 CIDR; for IPv6 the
/// subnet-router anycast address (the network address), as upstream does.
pub fn default_gateway(net: &IpNet) -> Option<IpAddr> {
    match net {
        IpNet::V4(v4) if v4.prefix_len() >= 31 => None,
        IpNet::V4(_) => Some(from_u128(bounds(net).first + 1, 4)),
        IpNet::V6(_) => Some(net.network()),
    }
}

/// Whether `gateway` is acceptable on `net`: outside the CIDR is allowed (an off-link router),
/// inside it must not be the IPv4 network or broadcast address.
pub fn gateway_valid(net: &IpNet, gateway: IpAddr) -> bool {
    if version_of(gateway) != version_of(net.addr()) {
        return false;
    }
    if !net.contains(&gateway) {
        return true;
    }
    match net {
        IpNet::V4(v4) if v4.prefix_len() < 31 => {
            gateway != net.network() && gateway != net.broadcast()
        }
        _ => true,
    }
}

/// Neutron's default pools: the usable addresses minus the gateway, split around it.
pub fn default_pools(net: &IpNet, gateway: Option<IpAddr>) -> Vec<Range> {
    let whole = usable(net);
    match gateway.map(to_u128) {
        Some(g) if (whole.first..=whole.last).contains(&g) => subtract(&[whole], &[g]),
        _ => vec![whole],
    }
}

/// Why requested pools are refused.
#[derive(Debug, PartialEq, Eq)]
pub enum PoolError {
    /// Reversed, or of the other IP version (400 InvalidAllocationPool).
    Invalid(String),
    /// Not inside the usable part of the CIDR (400 OutOfBoundsAllocationPool).
    OutOfBounds(String),
    /// Two pools share addresses (409 OverlappingAllocationPools).
    Overlap(String),
    /// The gateway lies in a pool (409 GatewayConflictWithAllocationPools).
    Gateway(String),
}

/// Checks requested pools against the CIDR, each other and the gateway; returns them sorted.
pub fn check_pools(
    net: &IpNet,
    pools: &[(IpAddr, IpAddr)],
    gateway: Option<IpAddr>,
) -> Result<Vec<Range>, PoolError> {
    let version = version_of(net.addr());
    let u = usable(net);
    let mut ranges = Vec::with_capacity(pools.len());
    for &(start, end) in pools {
        let text = format!("{start}-{end}");
        if version_of(start) != version || version_of(end) != version {
            return Err(PoolError::Invalid(format!(
                "The allocation pool {text} is not of the subnet's IP version"
            )));
        }
        let (first, last) = (to_u128(start), to_u128(end));
        if first > last {
            return Err(PoolError::Invalid(format!(
                "The allocation pool {text} has its end before its start"
            )));
        }
        if first < u.first || last > u.last || !net.contains(&start) || !net.contains(&end) {
            return Err(PoolError::OutOfBounds(format!(
                "The allocation pool {text} spans beyond the subnet cidr {net}."
            )));
        }
        ranges.push(Range { first, last });
    }
    ranges.sort();
    for pair in ranges.windows(2) {
        if pair[1].first <= pair[0].last {
            return Err(PoolError::Overlap(format!(
                "Found overlapping allocation pools: {} and {}.",
                show(pair[0], version),
                show(pair[1], version)
            )));
        }
    }
    if let Some(g) = gateway {
        let gk = to_u128(g);
        if let Some(r) = ranges.iter().find(|r| (r.first..=r.last).contains(&gk)) {
            return Err(PoolError::Gateway(format!(
                "Gateway ip {g} conflicts with allocation pool {}",
                show(*r, version)
            )));
        }
    }
    Ok(ranges)
}

fn show(r: Range, version: u8) -> String {
    format!(
        "{}-{}",
        from_u128(r.first, version),
        from_u128(r.last, version)
    )
}

/// `ranges` (sorted, disjoint) without the addresses in `taken`.
pub fn subtract(ranges: &[Range], taken: &[u128]) -> Vec<Range> {
    let mut taken = taken.to_vec();
    taken.sort_unstable();
    let mut out = Vec::new();
    for r in ranges {
        let mut next = r.first;
        for &t in taken.iter().filter(|t| (r.first..=r.last).contains(*t)) {
            if t > next {
                out.push(Range {
                    first: next,
                    last: t - 1,
                });
            }
            next = t.saturating_add(1);
        }
        if next <= r.last && next >= r.first {
            out.push(Range {
                first: next,
                last: r.last,
            });
        }
    }
    out
}

/// Whether two networks share any address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The EUI-64 address of `mac` in a /64 (SLAAC): the MAC with `ff:fe` in the middle and the
/// universal/local bit flipped.
pub fn eui64(net: &IpNet, mac: [u8; 6]) -> IpAddr {
    let iid = [
        mac[0] ^ 0x02,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ];
    let prefix = to_u128(net.network()) & !u128::from(u64::MAX);
    IpAddr::V6(Ipv6Addr::from(prefix | u128::from(u64::from_be_bytes(iid))))
}

/// Neutron's host name for an address when the port has no `dns_name`: `host-10-0-0-5`,
/// `host-2001-db8--5` (used by `dns_assignment` and the DHCP host entries).
pub fn generated_hostname(ip_address: &str) -> String {
    format!("host-{}", ip_address.replace(['.', ':'], "-"))
}

/// Parses a MAC address in any common notation into lowercase colon form.
pub fn normalize_mac(text: &str) -> Option<(String, [u8; 6])> {
    let hex: String = text
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let separators_ok = text.len() == 12
        || text.split([':', '-']).all(|g| g.len() == 2) && text.split([':', '-']).count() == 6
        || text.split('.').all(|g| g.len() == 4) && text.split('.').count() == 3;
    if !separators_ok {
        return None;
    }
    let mut bytes = [0u8; 6];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    let text = bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    Some((text, bytes))
}

/// A MAC from Neutron's `base_mac` `fa:16:3e:00:00:00`: the first three octets fixed.
pub fn random_mac() -> (String, [u8; 6]) {
    // A v4 UUID is 122 random bits from the OS generator; three bytes of it are enough.
    let tail = uuid::Uuid::new_v4().into_bytes();
    base_mac([tail[0], tail[1], tail[2]])
}

/// `fa:16:3e` followed by `tail`.
fn base_mac(tail: [u8; 3]) -> (String, [u8; 6]) {
    let bytes = [0xfa, 0x16, 0x3e, tail[0], tail[1], tail[2]];
    let text = bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    (text, bytes)
}

/// How many MACs a port's creation generates at most before giving up on finding a free one
/// (Neutron's `mac_generation_retries`).
pub const MAC_GENERATION_RETRIES: usize = 16;

/// Where generated MACs come from: the OS's random source (the default), or, for tests that
/// need to know which MACs a server will generate (to make collisions certain), a sequence
/// fixed by a seed. Clones share the sequence; a new generator of the same seed starts it over.
#[derive(Debug, Clone, Default)]
pub struct MacGenerator {
    seeded: Option<std::sync::Arc<std::sync::Mutex<u64>>>,
}

impl MacGenerator {
    /// MACs from the OS's random source.
    pub fn random() -> MacGenerator {
        MacGenerator::default()
    }

    /// The same MACs, in the same order, for the same seed (SplitMix64 over a counter).
    pub fn seeded(seed: u64) -> MacGenerator {
        MacGenerator {
            seeded: Some(std::sync::Arc::new(std::sync::Mutex::new(seed))),
        }
    }

    /// The next MAC, `fa:16:3e:xx:xx:xx`.
    pub fn next_mac(&self) -> (String, [u8; 6]) {
        let Some(state) = &self.seeded else {
            return random_mac();
        };
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let b = z.to_be_bytes();
        base_mac([b[0], b[1], b[2]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn pools(net: &IpNet, ranges: &[Range]) -> Vec<String> {
        let v = version_of(net.addr());
        ranges.iter().map(|r| show(*r, v)).collect()
    }

    #[test]
    fn cidrs_are_canonicalised_and_checked() {
        assert_eq!(parse_cidr("10.0.0.5/24", 4).unwrap(), net("10.0.0.0/24"));
        assert_eq!(
            parse_cidr("10.0.0.0/33", 4).unwrap_err(),
            "10.0.0.0/33 is not in a CIDR format."
        );
        assert_eq!(
            parse_cidr("10.0.0.0/24", 6).unwrap_err(),
            "cidr '10.0.0.0/24' does not match the ip_version '6'"
        );
        assert!(parse_cidr("0.0.0.0/0", 4).is_err());
    }

    #[test]
    fn default_pools_match_upstream() {
        let n = net("10.0.0.0/24");
        let g = default_gateway(&n);
        assert_eq!(g, Some(ip("10.0.0.1")));
        assert_eq!(pools(&n, &default_pools(&n, g)), ["10.0.0.2-10.0.0.254"]);
        // A gateway in the middle splits the pool; one outside the CIDR leaves it whole.
        assert_eq!(
            pools(&n, &default_pools(&n, Some(ip("10.0.0.100")))),
            ["10.0.0.1-10.0.0.99", "10.0.0.101-10.0.0.254"]
        );
        assert_eq!(
            pools(&n, &default_pools(&n, Some(ip("10.9.9.1")))),
            ["10.0.0.1-10.0.0.254"]
        );
        let v6 = net("fd00:1::/64");
        let g6 = default_gateway(&v6);
        assert_eq!(g6, Some(ip("fd00:1::")));
        assert_eq!(
            pools(&v6, &default_pools(&v6, g6)),
            ["fd00:1::1-fd00:1::ffff:ffff:ffff:ffff"]
        );
        let p2p = net("10.0.0.0/31");
        assert_eq!(
            pools(&p2p, &default_pools(&p2p, default_gateway(&p2p))),
            ["10.0.0.0-10.0.0.1"]
        );
        let small = net("10.0.0.0/30");
        assert_eq!(
            pools(&small, &default_pools(&small, default_gateway(&small))),
            ["10.0.0.2-10.0.0.2"]
        );
    }

    #[test]
    fn pools_are_checked() {
        let n = net("10.0.0.0/24");
        let g = Some(ip("10.0.0.1"));
        let ok = check_pools(
            &n,
            &[
                (ip("10.0.0.100"), ip("10.0.0.200")),
                (ip("10.0.0.10"), ip("10.0.0.20")),
            ],
            g,
        )
        .unwrap();
        assert_eq!(
            pools(&n, &ok),
            ["10.0.0.10-10.0.0.20", "10.0.0.100-10.0.0.200"]
        );
        assert!(matches!(
            check_pools(&n, &[(ip("10.0.0.0"), ip("10.0.0.20"))], g),
            Err(PoolError::OutOfBounds(_))
        ));
        assert!(matches!(
            check_pools(&n, &[(ip("10.0.0.20"), ip("10.0.0.10"))], g),
            Err(PoolError::Invalid(_))
        ));
        assert!(matches!(
            check_pools(
                &n,
                &[
                    (ip("10.0.0.10"), ip("10.0.0.20")),
                    (ip("10.0.0.20"), ip("10.0.0.30"))
                ],
                g
            ),
            Err(PoolError::Overlap(_))
        ));
        assert!(matches!(
            check_pools(&n, &[(ip("10.0.0.1"), ip("10.0.0.20"))], g),
            Err(PoolError::Gateway(_))
        ));
    }

    #[test]
    fn reserved_addresses_are_not_usable() {
        let n = net("10.0.0.0/24");
        assert!(!is_usable(&n, ip("10.0.0.0")));
        assert!(!is_usable(&n, ip("10.0.0.255")));
        assert!(is_usable(&n, ip("10.0.0.1")));
        assert!(!is_usable(&n, ip("10.0.1.1")));
        assert!(!gateway_valid(&n, ip("10.0.0.255")));
        assert!(gateway_valid(&n, ip("192.168.0.1")));
        assert!(!gateway_valid(&n, ip("fd00::1")));
    }

    #[test]
    fn subtracting_addresses_splits_ranges() {
        let r = [Range { first: 1, last: 10 }];
        assert_eq!(
            subtract(&r, &[1, 5, 10, 42]),
            [Range { first: 2, last: 4 }, Range { first: 6, last: 9 }]
        );
        assert_eq!(subtract(&r, &[]), r);
    }

    #[test]
    fn keys_sort_numerically() {
        assert!(key(9) < key(10));
        assert!(key(0xff) < key(0x100));
        assert_eq!(from_key(&key(12345)), Some(12345));
    }

    #[test]
    fn eui64_and_macs() {
        let (mac, bytes) = normalize_mac("FA-16-3E-00-00-01").unwrap();
        assert_eq!(mac, "fa:16:3e:00:00:01");
        assert_eq!(
            eui64(&net("fd00:1::/64"), bytes),
            ip("fd00:1::f816:3eff:fe00:1")
        );
        assert!(normalize_mac("zz:zz").is_none());
        assert!(normalize_mac("fa:16:3e:00:00").is_none());
        assert!(random_mac().0.starts_with("fa:16:3e:"));
        let first = MacGenerator::seeded(7);
        let seeded: Vec<String> = (0..100).map(|_| first.next_mac().0).collect();
        let again = MacGenerator::seeded(7);
        assert!(seeded.iter().all(|m| *m == again.next_mac().0));
        assert!(
            seeded
                .iter()
                .all(|m| normalize_mac(m).is_some_and(|n| n.0 == *m))
        );
        let distinct: std::collections::HashSet<_> = seeded.iter().collect();
        assert_eq!(distinct.len(), 100, "a seeded sequence repeats early");
        assert_ne!(MacGenerator::seeded(8).next_mac().0, seeded[0]);
        assert!(overlaps(&net("10.0.0.0/24"), &net("10.0.0.0/25")));
        assert!(!overlaps(&net("10.0.0.0/25"), &net("10.0.0.128/25")));
    }
}

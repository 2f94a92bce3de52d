//! The L3 agent's kernel side (Neutron's legacy router): a router's `qrouter-` namespace made
//! to match the server's [`HostRouter`]. The namespace and its `qr-`/`qg-` devices are the
//! drivers' (router ports are plugged like any port); this module adds what makes them a
//! router: the sysctls, the devices' addresses, the routes, NAT and the floating IPs.
//!
//! Addresses and routes go through netlink in the namespace and are compared with what the
//! kernel holds, so an apply changes only what differs. NAT is one `iptables-restore` of the
//! namespace's whole `nat` and `mangle` tables ([`nat`]), written when it differs from what was
//! last written there.

pub mod nat;
pub mod plan;
pub mod tools;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use ipnet::IpNet;
use neutrino_model::Op;
use neutrino_proto::{FloatingIpStatus, HostRouter};
use rtnetlink::RouteMessageBuilder;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteNextHop, RouteProtocol, RouteScope,
};

use crate::executor::netlink::{Link, Netlink};
use crate::executor::{Executor, namespace};
use plan::{Floating, Route, Wanted, same_route};

/// The prefix of every router namespace (the stale sweep's too).
pub const NAMESPACE_PREFIX: &str = "qrouter-";

/// What an apply did not manage, and the floating IPs whose status changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Floating IPs whose reported status differs from what they are now: ACTIVE (address
    /// and NAT in place) or ERROR. For the server's floating IP status report.
    pub statuses: Vec<FloatingIpStatus>,
    /// What could not be done (also logged); empty: the namespace matches the router.
    pub errors: Vec<String>,
}

/// What was last written in a router's namespace.
struct Written {
    namespace: String,
    /// The namespace's inode when the NAT was written: a namespace made anew is written again.
    inode: u64,
    nat: String,
    floating: BTreeSet<Floating>,
}

/// The routers of this host. Every method may be called from any thread of a tokio runtime
/// (whatever its namespace): netlink and tools run on threads that enter the router's
/// namespace.
pub struct Routers {
    executor: Executor,
    written: HashMap<String, Written>,
    /// `arping`, looked up at the first gratuitous ARP (`Some(None)`: not installed, said once).
    arping: Option<Option<PathBuf>>,
}

impl Routers {
    pub fn new(executor: Executor) -> Routers {
        Routers {
            executor,
            written: HashMap::new(),
            arping: None,
        }
    }

    /// The routers applied and not removed (their ids).
    pub fn served(&self) -> impl Iterator<Item = &str> {
        self.written.keys().map(String::as_str)
    }

    /// Makes the router's namespace match `router`. The namespace and the router's devices
    /// must exist (plugged by the drivers); a missing device is an error, as are floating IPs
    /// without a gateway device.
    pub async fn apply(&mut self, router: &HostRouter) -> Applied {
        let wanted = Wanted::of(router);
        let mut errors = wanted.errors.clone();
        let mut active: BTreeSet<String> = BTreeSet::new();
        match self.converge(router, &wanted, &mut errors).await {
            Ok(placed) => active = placed,
            Err(e) => errors.push(format!("{e:#}")),
        }
        for e in &errors {
            tracing::warn!("router {}: {e}", router.id);
        }
        let statuses = if router.admin_state_up {
            statuses(router, &active)
        } else {
            Vec::new()
        };
        Applied { statuses, errors }
    }

    /// Deletes the router's namespace (the caller unplugs its ports first: their devices go
    /// with it otherwise). A namespace already gone is fine.
    pub async fn remove(&mut self, router_id: &str) -> Result<()> {
        let namespace = match self.written.remove(router_id) {
            Some(w) => w.namespace,
            None => neutrino_proto::router_namespace(router_id),
        };
        self.executor
            .apply(&[Op::RemoveNamespace(namespace)])
            .await
            .map_err(anyhow::Error::from)
    }

    /// Everything but the floating IP statuses; returns the floating IPs in place.
    async fn converge(
        &mut self,
        router: &HostRouter,
        wanted: &Wanted,
        errors: &mut Vec<String>,
    ) -> Result<BTreeSet<String>> {
        let ns = router.namespace.as_str();
        if !ns.starts_with(NAMESPACE_PREFIX) || ns.len() == NAMESPACE_PREFIX.len() {
            bail!("{ns:?} is not a {NAMESPACE_PREFIX} namespace");
        }
        if !namespace::exists(ns) {
            bail!("namespace {ns} does not exist (its ports are not plugged yet?)");
        }
        let nl = Netlink::in_namespace(ns).await?;
        tools::set_sysctls(ns).await?;
        let lo = nl.existing("lo").await?;
        nl.correct(&lo, None, None, Some(true)).await?;

        let up = router.admin_state_up;
        let floating: BTreeSet<Floating> = match up {
            true => wanted.floating.values().copied().collect(),
            false => BTreeSet::new(),
        };
        let floating_nets: BTreeSet<IpNet> = floating
            .iter()
            .map(|f| IpNet::from(IpAddr::V4(f.address)))
            .collect();

        let (links, dropped) = self
            .sync_devices(&nl, ns, wanted, up, &floating_nets, errors)
            .await?;

        // NAT, before the floating addresses (as Neutron: traffic to a new address finds
        // its DNAT), then the addresses, then the old floating IPs' connections.
        let gateway = wanted
            .gateway
            .as_ref()
            .filter(|_| up)
            .map(|gw| nat::NatGateway {
                device: gw.name.clone(),
                address: wanted.gateway_ipv4,
                enable_snat: wanted.enable_snat,
                floating_ips: floating.iter().map(|f| (f.address, f.fixed)).collect(),
            });
        let text = nat::tables(gateway.as_ref());
        let previous = self.written.get(&router.id).map(|w| w.floating.clone());
        let nat_ok = match self.write_nat(router, &text, &floating).await {
            Ok(()) => true,
            Err(e) => {
                errors.push(format!("NAT: {e:#}"));
                false
            }
        };
        let mut placed = BTreeSet::new();
        if let (true, true, Some(gw)) = (nat_ok, up, wanted.gateway.as_ref())
            && let Some(link) = links.get(&gw.name)
        {
            placed = self.place_floating(&nl, ns, wanted, link, errors).await?;
        }
        // A floating IP now on another fixed address keeps no connection of the old one.
        let moved = previous.iter().flatten().filter_map(|old| {
            floating
                .iter()
                .any(|f| f.address == old.address && f.fixed != old.fixed)
                .then_some(IpAddr::V4(old.address))
        });
        for ip in dropped.iter().copied().chain(moved) {
            tools::forget_connections(ns, &ip.to_string()).await;
        }

        let routes = if up { wanted.routes.as_slice() } else { &[] };
        sync_routes(&nl, routes, errors).await?;
        Ok(placed)
    }

    /// Every device up with its addresses (none while the router is down: nothing answers
    /// or is forwarded, and the devices stay as the drivers plugged them). Returns the links
    /// found, and the IPv4 addresses taken off the gateway device.
    async fn sync_devices(
        &mut self,
        nl: &Netlink,
        ns: &str,
        wanted: &Wanted,
        up: bool,
        floating: &BTreeSet<IpNet>,
        errors: &mut Vec<String>,
    ) -> Result<(BTreeMap<String, Link>, BTreeSet<IpAddr>)> {
        let none = BTreeSet::new();
        let mut links = BTreeMap::new();
        let mut dropped = BTreeSet::new();
        for device in wanted.devices() {
            let Some(link) = nl.link(&device.name).await? else {
                errors.push(format!("device {} is not in {ns}", device.name));
                continue;
            };
            nl.correct(&link, None, None, Some(true)).await?;
            let is_gateway = wanted.gateway.as_ref() == Some(device);
            let addresses: &[IpNet] = if up { &device.addresses } else { &[] };
            // The floating /32s already on the gateway stay; new ones come after their NAT.
            let keep = if is_gateway { floating } else { &none };
            let (added, removed) = sync_addresses(nl, &link, addresses, keep).await?;
            for ip in added.into_iter().filter(IpAddr::is_ipv4) {
                self.announce(ns, &device.name, ip).await;
            }
            if is_gateway {
                dropped.extend(removed.into_iter().filter(IpAddr::is_ipv4));
            }
            links.insert(device.name.clone(), link);
        }
        Ok((links, dropped))
    }

    /// Each floating IP's /32 on the gateway device (announced when new); the ids of those
    /// in place.
    async fn place_floating(
        &mut self,
        nl: &Netlink,
        ns: &str,
        wanted: &Wanted,
        gateway: &Link,
        errors: &mut Vec<String>,
    ) -> Result<BTreeSet<String>> {
        let present: BTreeSet<IpAddr> = nl
            .address_list(gateway)
            .await?
            .into_iter()
            .map(|a| a.ip)
            .collect();
        let mut placed = BTreeSet::new();
        for (id, fip) in &wanted.floating {
            let ip = IpAddr::V4(fip.address);
            if present.contains(&ip) {
                placed.insert(id.clone());
                continue;
            }
            match nl.add_address(gateway, ip, 32).await {
                Ok(()) => {
                    placed.insert(id.clone());
                    self.announce(ns, &gateway.name, ip).await;
                }
                Err(e) => errors.push(format!("floating IP {ip}: {e:#}")),
            }
        }
        Ok(placed)
    }

    /// Writes the NAT tables unless this text is what the namespace holds already.
    async fn write_nat(
        &mut self,
        router: &HostRouter,
        text: &str,
        floating: &BTreeSet<Floating>,
    ) -> Result<()> {
        let ns = &router.namespace;
        let inode = std::fs::metadata(namespace::path(ns)?)
            .with_context(|| format!("namespace {ns}"))?
            .ino();
        let current = self
            .written
            .get(&router.id)
            .is_some_and(|w| w.namespace == *ns && w.inode == inode && w.nat == text);
        if !current {
            tools::iptables_restore(ns, text).await?;
        }
        self.written.insert(
            router.id.clone(),
            Written {
                namespace: ns.clone(),
                inode,
                nat: text.to_string(),
                floating: floating.clone(),
            },
        );
        Ok(())
    }

    /// A gratuitous ARP for a new IPv4 address, when `arping` is installed.
    async fn announce(&mut self, ns: &str, device: &str, ip: IpAddr) {
        let arping = self.arping.get_or_insert_with(|| {
            let found = tools::find_arping();
            if found.is_none() {
                tracing::warn!(
                    "arping is not installed: routers send no gratuitous ARP for new addresses \
                     (neighbours learn them when they ask)"
                );
            }
            found
        });
        if let Some(arping) = arping.clone() {
            tools::gratuitous_arp(ns, arping, device, &ip.to_string()).await;
        }
    }
}

/// The floating IPs whose status is not what the server shows.
fn statuses(router: &HostRouter, placed: &BTreeSet<String>) -> Vec<FloatingIpStatus> {
    router
        .floating_ips
        .iter()
        .map(|f| {
            let status = if placed.contains(&f.id) {
                "ACTIVE"
            } else {
                "ERROR"
            };
            (f, status)
        })
        .filter(|(f, status)| f.status != *status)
        .map(|(f, status)| FloatingIpStatus {
            id: f.id.clone(),
            status: status.to_string(),
        })
        .collect()
}

/// Makes the link's global addresses `wanted` plus those of `keep` already there; returns the
/// addresses added and removed.
async fn sync_addresses(
    nl: &Netlink,
    link: &Link,
    wanted: &[IpNet],
    keep: &BTreeSet<IpNet>,
) -> Result<(Vec<IpAddr>, Vec<IpAddr>)> {
    let present = nl.address_list(link).await?;
    let mut removed = Vec::new();
    for address in present.iter().filter(|a| a.global) {
        let Ok(net) = IpNet::new(address.ip, address.prefix) else {
            continue;
        };
        if !wanted.contains(&net) && !keep.contains(&net) {
            nl.delete_address(link, address).await?;
            removed.push(address.ip);
        }
    }
    let mut added = Vec::new();
    for net in wanted {
        if !present
            .iter()
            .any(|a| a.ip == net.addr() && a.prefix == net.prefix_len())
        {
            nl.add_address(link, net.addr(), net.prefix_len()).await?;
            added.push(net.addr());
        }
    }
    Ok((added, removed))
}

/// Makes the main table's routes of ours (every route the kernel did not make itself) exactly
/// `wanted`: a route that differs is replaced, one to a destination no longer wanted deleted.
async fn sync_routes(nl: &Netlink, wanted: &[Route], errors: &mut Vec<String>) -> Result<()> {
    let links = nl.links().await?;
    let name_of = |index: u32| {
        links
            .iter()
            .find(|l| l.index == index)
            .map(|l| l.name.clone())
    };
    let present: Vec<(Route, RouteMessage)> = nl
        .main_routes()
        .await?
        .into_iter()
        .filter(|m| !matches!(m.header.protocol, RouteProtocol::Kernel | RouteProtocol::Ra))
        .filter_map(|m| Some((parse_route(&m, &name_of)?, m)))
        .collect();
    for (route, message) in &present {
        if !wanted.iter().any(|w| w.destination == route.destination) {
            nl.delete_route(&route.destination.to_string(), message.clone())
                .await?;
        }
    }
    for route in wanted {
        if present.iter().any(|(p, _)| same_route(route, p)) {
            continue;
        }
        let what = format!("to {}", route.destination);
        let result = match build_route(route, &links) {
            Ok(message) => nl.replace_route(&what, message).await,
            Err(e) => Err(e),
        };
        // One route the kernel refuses (a nexthop on no subnet) does not keep the others.
        if let Err(e) = result {
            errors.push(format!("route {what}: {e:#}"));
        }
    }
    Ok(())
}

fn parse_route(m: &RouteMessage, name_of: &dyn Fn(u32) -> Option<String>) -> Option<Route> {
    let mut destination = None;
    let mut via = BTreeSet::new();
    let mut device = None;
    let address = |a: &RouteAddress| match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    };
    for attr in &m.attributes {
        match attr {
            RouteAttribute::Destination(a) => destination = address(a),
            RouteAttribute::Gateway(a) => via.extend(address(a)),
            RouteAttribute::Oif(index) => device = name_of(*index),
            RouteAttribute::MultiPath(hops) => {
                for hop in hops {
                    for attr in &hop.attributes {
                        if let RouteAttribute::Gateway(a) = attr {
                            via.extend(address(a));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let destination = destination.unwrap_or(match m.header.address_family {
        rtnetlink::packet_route::AddressFamily::Inet6 => {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        }
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    });
    Some(Route {
        destination: IpNet::new(destination, m.header.destination_prefix_length).ok()?,
        via,
        device,
    })
}

fn build_route(route: &Route, links: &[Link]) -> Result<RouteMessage> {
    let net = route.destination;
    let mut builder =
        RouteMessageBuilder::<IpAddr>::new().destination_prefix(net.addr(), net.prefix_len())?;
    if let Some(name) = &route.device {
        let link = links
            .iter()
            .find(|l| &l.name == name)
            .with_context(|| format!("device {name} is not there"))?;
        builder = builder.output_interface(link.index);
    }
    match route.via.len() {
        // On-link: `ip route replace <gateway> dev qg-X scope link`.
        0 => builder = builder.scope(RouteScope::Link),
        1 => builder = builder.gateway(*route.via.first().expect("one nexthop"))?,
        _ => {
            let hops = route
                .via
                .iter()
                .map(|ip| {
                    let mut hop = RouteNextHop::default();
                    hop.attributes
                        .push(RouteAttribute::Gateway(RouteAddress::from(*ip)));
                    hop
                })
                .collect();
            builder = builder.multipath(hops);
        }
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use neutrino_proto::HostFloatingIp;

    #[test]
    fn only_changed_statuses_are_reported() {
        let fip = |id: &str, status: &str| HostFloatingIp {
            id: id.into(),
            floating_ip_address: "172.24.4.10".into(),
            fixed_ip_address: "10.0.0.5".into(),
            status: status.into(),
        };
        let router = HostRouter {
            id: "r".into(),
            admin_state_up: true,
            namespace: "qrouter-r".into(),
            interfaces: vec![],
            gateway: None,
            routes: vec![],
            floating_ips: vec![
                fip("new", "DOWN"),
                fip("same", "ACTIVE"),
                fip("broken", "ACTIVE"),
                fip("still-broken", "ERROR"),
            ],
        };
        let placed = BTreeSet::from(["new".to_string(), "same".to_string()]);
        let status = |id: &str, s: &str| FloatingIpStatus {
            id: id.into(),
            status: s.into(),
        };
        assert_eq!(
            statuses(&router, &placed),
            vec![status("new", "ACTIVE"), status("broken", "ERROR")]
        );
    }

    #[test]
    fn a_built_route_reads_back_as_the_same_route() {
        let links = vec![Link {
            index: 7,
            name: "qg-cccccccc-c1".into(),
            kind: Some("veth".into()),
            info: None,
            link: None,
            controller: None,
            mac: None,
            mtu: None,
            up: true,
        }];
        let name_of = |i: u32| (i == 7).then(|| "qg-cccccccc-c1".to_string());
        let routes = [
            Route {
                destination: "10.98.0.0/16".parse().unwrap(),
                via: BTreeSet::from(["10.61.0.20".parse().unwrap(), "10.62.0.20".parse().unwrap()]),
                device: None,
            },
            Route {
                destination: "0.0.0.0/0".parse().unwrap(),
                via: BTreeSet::from(["192.0.2.1".parse().unwrap()]),
                device: Some("qg-cccccccc-c1".into()),
            },
            Route {
                destination: "192.0.2.1/32".parse().unwrap(),
                via: BTreeSet::new(),
                device: Some("qg-cccccccc-c1".into()),
            },
            Route {
                destination: "::/0".parse().unwrap(),
                via: BTreeSet::from(["2001:db8::1".parse().unwrap()]),
                device: Some("qg-cccccccc-c1".into()),
            },
        ];
        for route in routes {
            let message = build_route(&route, &links).unwrap();
            let read = parse_route(&message, &name_of).unwrap();
            assert!(same_route(&route, &read), "{route:?} read as {read:?}");
        }
    }
}

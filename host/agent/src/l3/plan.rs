//! What a router's namespace must hold, computed from the server's [`HostRouter`] alone: the
//! devices' addresses, the floating IPs, the routes. Pure, so that the kernel side only
//! compares and applies.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use neutrino_proto::{HostRouter, RouterDevice};

/// A device of the router with the addresses it must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub addresses: Vec<IpNet>,
}

/// A route of the main table. `via` empty: on-link through `device`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub destination: IpNet,
    /// Several: one ECMP route.
    pub via: BTreeSet<IpAddr>,
    /// Given for the gateway's routes; extra routes' nexthops find their device.
    pub device: Option<String>,
}

/// A floating IP as the namespace holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Floating {
    pub address: Ipv4Addr,
    pub fixed: Ipv4Addr,
}

/// Everything of a router, checked. Anything that does not parse is in `errors` and left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    pub interfaces: Vec<Device>,
    pub gateway: Option<Device>,
    /// The SNAT source: the gateway's first IPv4 address.
    pub gateway_ipv4: Option<Ipv4Addr>,
    pub enable_snat: bool,
    /// Floating IP id -> its addresses (those that parse; the others are in `bad_floating`).
    pub floating: BTreeMap<String, Floating>,
    pub bad_floating: BTreeSet<String>,
    pub routes: Vec<Route>,
    pub errors: Vec<String>,
}

/// A device name we put in iptables rules and look up: the driver's `qr-`/`qg-` name, plain
/// characters only, at most the kernel's 15.
pub fn device_name_ok(name: &str, prefix: &str) -> bool {
    name.len() <= 15
        && name.len() > prefix.len()
        && name.starts_with(prefix)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl Wanted {
    pub fn of(router: &HostRouter) -> Wanted {
        let mut wanted = Wanted::default();
        for interface in &router.interfaces {
            if let Some(device) = wanted.device(interface, "qr-") {
                wanted.interfaces.push(device);
            }
        }
        if let Some(gateway) = &router.gateway {
            wanted.gateway = wanted.device(&gateway.device, "qg-");
            wanted.enable_snat = gateway.enable_snat;
        }
        if let Some(gw) = wanted.gateway.clone() {
            wanted.gateway_ipv4 = gw.addresses.iter().find_map(|a| match a.addr() {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            });
            let gateway_ips = router.gateway.iter().flat_map(|g| &g.gateway_ips);
            let defaults = wanted.default_routes(&gw, gateway_ips);
            wanted.routes.extend(defaults);
        }
        for fip in &router.floating_ips {
            let parsed: Result<(Ipv4Addr, Ipv4Addr), _> = fip
                .floating_ip_address
                .parse()
                .and_then(|address| Ok((address, fip.fixed_ip_address.parse()?)));
            match parsed {
                Ok((address, fixed)) if wanted.gateway.is_some() => {
                    wanted
                        .floating
                        .insert(fip.id.clone(), Floating { address, fixed });
                }
                Ok(_) => {
                    wanted.bad_floating.insert(fip.id.clone());
                    wanted.errors.push(format!(
                        "floating IP {} on a router without a gateway",
                        fip.floating_ip_address
                    ));
                }
                Err(_) => {
                    wanted.bad_floating.insert(fip.id.clone());
                    wanted.errors.push(format!(
                        "floating IP {}: {:?} -> {:?} are not IPv4 addresses",
                        fip.id, fip.floating_ip_address, fip.fixed_ip_address
                    ));
                }
            }
        }
        let extra = wanted.extra_routes(&router.routes);
        wanted.routes.extend(extra);
        wanted
    }

    fn device(&mut self, device: &RouterDevice, prefix: &str) -> Option<Device> {
        if !device_name_ok(&device.interface_name, prefix) {
            self.errors.push(format!(
                "port {}: {:?} is not a {prefix} device name",
                device.port_id, device.interface_name
            ));
            return None;
        }
        let mut addresses = Vec::new();
        for text in &device.addresses {
            match text.parse::<IpNet>() {
                Ok(net) => addresses.push(net),
                Err(_) => self.errors.push(format!(
                    "{}: {text:?} is not an address/prefix",
                    device.interface_name
                )),
            }
        }
        Some(Device {
            name: device.interface_name.clone(),
            addresses,
        })
    }

    /// One default route per family, via the first gateway IP of that family (as Neutron,
    /// where a later one of the same family would replace it), after an on-link route to it
    /// when it lies outside every subnet of the device.
    fn default_routes<'a>(
        &mut self,
        gw: &Device,
        gateway_ips: impl Iterator<Item = &'a String>,
    ) -> Vec<Route> {
        let mut routes = Vec::new();
        let mut families = BTreeSet::new();
        for text in gateway_ips {
            let Ok(ip) = text.parse::<IpAddr>() else {
                self.errors
                    .push(format!("gateway IP {text:?} is not an address"));
                continue;
            };
            if !families.insert(ip.is_ipv4()) {
                continue;
            }
            if !gw.addresses.iter().any(|net| net.contains(&ip)) {
                routes.push(Route {
                    destination: IpNet::from(ip),
                    via: BTreeSet::new(),
                    device: Some(gw.name.clone()),
                });
            }
            let any = if ip.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
            routes.push(Route {
                destination: any.parse().expect("a default destination"),
                via: BTreeSet::from([ip]),
                device: Some(gw.name.clone()),
            });
        }
        routes
    }

    /// The extra routes, one per destination (its nexthops together: ECMP).
    fn extra_routes(&mut self, routes: &[(String, String)]) -> Vec<Route> {
        let mut by_destination: BTreeMap<IpNet, BTreeSet<IpAddr>> = BTreeMap::new();
        for (destination, nexthop) in routes {
            match (destination.parse::<IpNet>(), nexthop.parse::<IpAddr>()) {
                (Ok(net), Ok(via)) if net.addr().is_ipv4() == via.is_ipv4() => {
                    by_destination.entry(net.trunc()).or_default().insert(via);
                }
                _ => self.errors.push(format!(
                    "extra route {destination:?} via {nexthop:?} is not a destination and a \
                     nexthop of one family"
                )),
            }
        }
        // A destination the gateway's routes already take (a default route) is theirs.
        let taken: BTreeSet<IpNet> = self.routes.iter().map(|r| r.destination).collect();
        by_destination
            .into_iter()
            .filter(|(destination, _)| {
                let free = !taken.contains(destination);
                if !free {
                    self.errors.push(format!(
                        "extra route to {destination} left out: the gateway's route has it"
                    ));
                }
                free
            })
            .map(|(destination, via)| Route {
                destination,
                via,
                device: None,
            })
            .collect()
    }

    /// Every device with its wanted addresses, the gateway's with the floating /32s.
    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.interfaces.iter().chain(self.gateway.iter())
    }

    /// The floating addresses as /32s.
    pub fn floating_addresses(&self) -> BTreeSet<IpNet> {
        self.floating
            .values()
            .map(|f| IpNet::from(IpAddr::V4(f.address)))
            .collect()
    }
}

/// A route already in the table counts as the wanted one when it goes to the same place the
/// same way (the device is compared only when the wanted route names one).
pub fn same_route(wanted: &Route, present: &Route) -> bool {
    wanted.destination == present.destination
        && wanted.via == present.via
        && (wanted.device.is_none() || wanted.device == present.device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use neutrino_proto::{HostFloatingIp, RouterGateway};

    fn device(name: &str, addresses: &[&str]) -> RouterDevice {
        RouterDevice {
            port_id: format!("{}-port", name),
            network_id: "net".into(),
            interface_name: name.into(),
            mac_address: "fa:16:3e:00:00:01".into(),
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn router() -> HostRouter {
        HostRouter {
            id: "r1".into(),
            admin_state_up: true,
            namespace: "qrouter-r1".into(),
            interfaces: vec![device("qr-aaaaaaaa-aa", &["10.0.0.1/24"])],
            gateway: Some(RouterGateway {
                device: device("qg-bbbbbbbb-bb", &["172.24.4.3/24", "2001:db8::3/64"]),
                gateway_ips: vec!["172.24.4.1".into(), "2001:db8::1".into()],
                enable_snat: true,
            }),
            routes: vec![],
            floating_ips: vec![HostFloatingIp {
                id: "f1".into(),
                floating_ip_address: "172.24.4.10".into(),
                fixed_ip_address: "10.0.0.5".into(),
                status: "DOWN".into(),
            }],
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn gateway_in_its_subnet_gets_a_default_route_per_family() {
        let w = Wanted::of(&router());
        assert!(w.errors.is_empty(), "{:?}", w.errors);
        assert_eq!(w.gateway_ipv4, Some("172.24.4.3".parse().unwrap()));
        let routes: Vec<(IpNet, Vec<IpAddr>)> = w
            .routes
            .iter()
            .map(|r| (r.destination, r.via.iter().copied().collect()))
            .collect();
        assert_eq!(
            routes,
            vec![
                (net("0.0.0.0/0"), vec!["172.24.4.1".parse().unwrap()]),
                (net("::/0"), vec!["2001:db8::1".parse().unwrap()]),
            ]
        );
        assert!(
            w.routes
                .iter()
                .all(|r| r.device.as_deref() == Some("qg-bbbbbbbb-bb"))
        );
    }

    #[test]
    fn gateway_outside_the_subnets_gets_an_on_link_route_first() {
        let mut r = router();
        r.gateway.as_mut().unwrap().gateway_ips = vec!["192.0.2.1".into(), "172.24.4.254".into()];
        let w = Wanted::of(&r);
        assert_eq!(
            w.routes,
            vec![
                Route {
                    destination: net("192.0.2.1/32"),
                    via: BTreeSet::new(),
                    device: Some("qg-bbbbbbbb-bb".into()),
                },
                Route {
                    destination: net("0.0.0.0/0"),
                    via: BTreeSet::from(["192.0.2.1".parse().unwrap()]),
                    device: Some("qg-bbbbbbbb-bb".into()),
                },
            ],
            "the first IPv4 gateway only"
        );
    }

    #[test]
    fn extra_routes_with_one_destination_are_one_ecmp_route() {
        let mut r = router();
        r.routes = vec![
            ("10.9.0.0/16".into(), "10.0.0.20".into()),
            ("10.9.0.0/16".into(), "10.0.0.21".into()),
            ("10.8.0.1/24".into(), "10.0.0.20".into()),
            ("0.0.0.0/0".into(), "10.0.0.20".into()),
            ("10.7.0.0/16".into(), "2001:db8::9".into()),
        ];
        let w = Wanted::of(&r);
        let extra: Vec<&Route> = w.routes.iter().filter(|r| r.device.is_none()).collect();
        assert_eq!(extra.len(), 2, "{extra:?}");
        assert_eq!(extra[0].destination, net("10.8.0.0/24"), "truncated");
        assert_eq!(extra[1].destination, net("10.9.0.0/16"));
        assert_eq!(extra[1].via.len(), 2);
        // The default route stays the gateway's; the mixed family route is refused.
        assert_eq!(w.errors.len(), 2, "{:?}", w.errors);
    }

    #[test]
    fn floating_ips_need_a_gateway_and_ipv4_addresses() {
        let w = Wanted::of(&router());
        assert_eq!(
            w.floating_addresses(),
            BTreeSet::from([net("172.24.4.10/32")])
        );
        let mut r = router();
        r.floating_ips[0].fixed_ip_address = "nope".into();
        let w = Wanted::of(&r);
        assert!(w.floating.is_empty() && w.bad_floating.contains("f1"));
        let mut r = router();
        r.gateway = None;
        let w = Wanted::of(&r);
        assert!(w.floating.is_empty() && w.bad_floating.contains("f1"));
        assert!(w.routes.is_empty());
    }

    #[test]
    fn device_names_must_be_plain_and_carry_their_prefix() {
        assert!(device_name_ok("qr-3f1c2a9e-7b", "qr-"));
        assert!(!device_name_ok("qg-3f1c2a9e-7b", "qr-"));
        assert!(!device_name_ok("qr-a -j ACCEPT", "qr-"));
        assert!(!device_name_ok("qr-3f1c2a9e-7b00", "qr-"), "longer than 15");
        let mut r = router();
        r.interfaces[0].interface_name = "qr-x\n-A".into();
        let w = Wanted::of(&r);
        assert!(w.interfaces.is_empty() && !w.errors.is_empty());
    }

    #[test]
    fn a_route_matches_on_destination_nexthops_and_named_device() {
        let wanted = Route {
            destination: net("10.9.0.0/16"),
            via: BTreeSet::from(["10.0.0.20".parse().unwrap()]),
            device: None,
        };
        let present = Route {
            device: Some("qr-aaaaaaaa-aa".into()),
            ..wanted.clone()
        };
        assert!(same_route(&wanted, &present));
        assert!(!same_route(
            &present,
            &Route {
                device: Some("qr-x".into()),
                ..present.clone()
            }
        ));
        let other_hop = Route {
            via: BTreeSet::from(["10.0.0.21".parse().unwrap()]),
            ..present.clone()
        };
        assert!(!same_route(&wanted, &other_hop));
    }
}

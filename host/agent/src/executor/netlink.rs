//! A netlink connection in one network namespace, and the little we read of a link.
//!
//! A netlink socket acts in the namespace of the thread that opened it, so a connection for
//! another namespace is opened on a thread that entered it (`namespace::run_in`); its
//! requests then run from any task.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Context, Result};
use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use rtnetlink::packet_route::link::{InfoData, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::packet_route::route::{RouteHeader, RouteMessage};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use super::namespace;

const ESRCH: i32 = 3;
const ENODEV: i32 = 19;
const EEXIST: i32 = 17;
const EADDRNOTAVAIL: i32 = 99;

/// An address on a link, as listed (kept whole to delete it exactly).
#[derive(Debug, Clone)]
pub struct Address {
    pub ip: IpAddr,
    pub prefix: u8,
    /// Scope global: not a link-local address the kernel made itself.
    pub global: bool,
    message: AddressMessage,
}

/// What the executor reads of a link.
#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `bridge`, `veth`, `vxlan`, `tun` (OVS netdev ports), ...; `None` for plain devices.
    pub kind: Option<String>,
    pub info: Option<InfoData>,
    /// IFLA_LINK: a veth's peer index, a VLAN's or macvlan's parent.
    pub link: Option<u32>,
    pub controller: Option<u32>,
    pub mac: Option<Vec<u8>>,
    pub mtu: Option<u32>,
    pub up: bool,
}

impl Link {
    fn from_message(msg: LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            info: None,
            link: None,
            controller: None,
            mac: None,
            mtu: None,
            up: msg.header.flags.contains(LinkFlags::Up),
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(name) => link.name = name,
                LinkAttribute::Link(index) => link.link = Some(index),
                LinkAttribute::Controller(index) => link.controller = Some(index),
                LinkAttribute::Address(mac) => link.mac = Some(mac),
                LinkAttribute::Mtu(mtu) => link.mtu = Some(mtu),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            LinkInfo::Kind(kind) => link.kind = Some(kind.to_string()),
                            LinkInfo::Data(data) => link.info = Some(data),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }

    pub fn is(&self, kind: &str) -> bool {
        self.kind.as_deref() == Some(kind)
    }
}

/// `fa:16:3e:..` as bytes.
pub fn parse_mac(text: &str) -> Result<Vec<u8>> {
    let bytes: Result<Vec<u8>, _> = text.split(':').map(|b| u8::from_str_radix(b, 16)).collect();
    match bytes {
        Ok(bytes) if bytes.len() == 6 => Ok(bytes),
        _ => anyhow::bail!("{text:?} is not a MAC address"),
    }
}

pub fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The kernel's errno of a failed request, if it was the kernel that refused.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
    /// For messages: "in namespace X" or "in the host namespace".
    place: String,
}

impl Netlink {
    /// A connection in the calling thread's namespace (the host's, for the agent).
    pub fn host() -> Result<Netlink> {
        let (connection, handle, _) = rtnetlink::new_connection().context("open netlink")?;
        tokio::spawn(connection);
        Ok(Netlink {
            handle,
            place: "in the host namespace".into(),
        })
    }

    /// A connection in the named namespace.
    pub async fn in_namespace(name: &str) -> Result<Netlink> {
        let runtime = tokio::runtime::Handle::current();
        let handle = namespace::run_in(name, move || {
            // The socket is registered with (and its connection driven by) our runtime.
            let _entered = runtime.enter();
            let (connection, handle, _) = rtnetlink::new_connection().context("open netlink")?;
            runtime.spawn(connection);
            Ok(handle)
        })
        .await?;
        Ok(Netlink {
            handle,
            place: format!("in namespace {name}"),
        })
    }

    pub fn place(&self) -> &str {
        &self.place
    }

    /// The connection's handle, for requests this module has no helper for.
    pub(super) fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// The index of the link holding `ip` (the underlay device of a tunnel from `ip`).
    pub async fn link_with_address(&self, ip: IpAddr) -> Result<Option<u32>> {
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .with_context(|| format!("list addresses {}", self.place))?;
        Ok(messages.into_iter().find_map(|m| {
            m.attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Address(a) if *a == ip))
                .then_some(m.header.index)
        }))
    }

    pub async fn link(&self, name: &str) -> Result<Option<Link>> {
        let mut stream = self.handle.link().get().match_name(name).execute();
        match stream.try_next().await {
            Ok(msg) => Ok(msg.map(Link::from_message)),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("look up link {name} {}", self.place)),
        }
    }

    /// The link, or an error saying it is missing.
    pub async fn existing(&self, name: &str) -> Result<Link> {
        self.link(name)
            .await?
            .with_context(|| format!("link {name} does not exist {}", self.place))
    }

    pub async fn links(&self) -> Result<Vec<Link>> {
        let messages: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .with_context(|| format!("list links {}", self.place))?;
        Ok(messages.into_iter().map(Link::from_message).collect())
    }

    /// Creates a link (fails if the name is taken).
    pub async fn add(&self, what: &str, message: LinkMessage) -> Result<()> {
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .with_context(|| format!("create {what} {}", self.place))
    }

    /// Changes an existing link (`ip link set`).
    pub async fn change(&self, what: &str, message: LinkMessage) -> Result<()> {
        self.handle
            .link()
            .change(message)
            .execute()
            .await
            .with_context(|| format!("change {what} {}", self.place))
    }

    /// Deletes a link; one already gone is fine.
    pub async fn delete(&self, link: &Link) -> Result<()> {
        match self.handle.link().del(link.index).execute().await {
            Err(e) if errno(&e) != Some(ENODEV) => {
                Err(e).with_context(|| format!("delete link {} {}", link.name, self.place))
            }
            _ => Ok(()),
        }
    }

    /// Sets what differs of MTU, MAC and up/down, in one request.
    pub async fn correct(
        &self,
        link: &Link,
        mtu: Option<u32>,
        mac: Option<&[u8]>,
        up: Option<bool>,
    ) -> Result<()> {
        let mut msg = LinkUnspec::new_with_index(link.index);
        let mut changed = false;
        if let Some(mtu) = mtu.filter(|m| link.mtu != Some(*m)) {
            msg = msg.mtu(mtu);
            changed = true;
        }
        if let Some(mac) = mac.filter(|m| link.mac.as_deref() != Some(*m)) {
            msg = msg.address(mac.to_vec());
            changed = true;
        }
        match up {
            Some(true) if !link.up => (msg, changed) = (msg.up(), true),
            Some(false) if link.up => (msg, changed) = (msg.down(), true),
            _ => {}
        }
        if !changed {
            return Ok(());
        }
        self.change(&format!("link {}", link.name), msg.build())
            .await
    }

    /// The addresses (address, prefix length) on a link.
    pub async fn addresses(&self, link: &Link) -> Result<Vec<(IpAddr, u8)>> {
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(link.index)
            .execute()
            .try_collect()
            .await
            .with_context(|| format!("list addresses of {} {}", link.name, self.place))?;
        Ok(messages
            .into_iter()
            .filter(|m| m.header.index == link.index)
            .filter_map(|m| {
                let prefix = m.header.prefix_len;
                m.attributes.into_iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some((ip, prefix)),
                    _ => None,
                })
            })
            .collect())
    }

    /// The addresses on a link, with their scope.
    pub async fn address_list(&self, link: &Link) -> Result<Vec<Address>> {
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(link.index)
            .execute()
            .try_collect()
            .await
            .with_context(|| format!("list addresses of {} {}", link.name, self.place))?;
        Ok(messages
            .into_iter()
            .filter(|m| m.header.index == link.index)
            .filter_map(|m| {
                let ip = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })?;
                Some(Address {
                    ip,
                    prefix: m.header.prefix_len,
                    global: m.header.scope == AddressScope::Universe,
                    message: m,
                })
            })
            .collect())
    }

    /// Deletes an address; one already gone is fine.
    pub async fn delete_address(&self, link: &Link, address: &Address) -> Result<()> {
        match self
            .handle
            .address()
            .del(address.message.clone())
            .execute()
            .await
        {
            Err(e) if errno(&e) != Some(EADDRNOTAVAIL) => Err(e).with_context(|| {
                format!(
                    "delete {}/{} from {} {}",
                    address.ip, address.prefix, link.name, self.place
                )
            }),
            _ => Ok(()),
        }
    }

    /// The routes of the main table, both families.
    pub async fn main_routes(&self) -> Result<Vec<RouteMessage>> {
        let mut all = Vec::new();
        let dumps = [
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
        ];
        for request in dumps {
            let routes: Vec<RouteMessage> = self
                .handle
                .route()
                .get(request)
                .execute()
                .try_collect()
                .await
                .with_context(|| format!("list routes {}", self.place))?;
            all.extend(
                routes
                    .into_iter()
                    .filter(|r| r.header.table == RouteHeader::RT_TABLE_MAIN),
            );
        }
        Ok(all)
    }

    /// Deletes a route as listed; one already gone is fine.
    pub async fn delete_route(&self, what: &str, route: RouteMessage) -> Result<()> {
        match self.handle.route().del(route).execute().await {
            Err(e) if errno(&e) != Some(ESRCH) => {
                Err(e).with_context(|| format!("delete route {what} {}", self.place))
            }
            _ => Ok(()),
        }
    }

    pub async fn add_address(&self, link: &Link, ip: IpAddr, prefix: u8) -> Result<()> {
        match self
            .handle
            .address()
            .add(link.index, ip, prefix)
            .execute()
            .await
        {
            Err(e) if errno(&e) != Some(EEXIST) => {
                Err(e).with_context(|| format!("add {ip}/{prefix} to {} {}", link.name, self.place))
            }
            _ => Ok(()),
        }
    }

    /// Adds the route, or replaces the one to the same destination.
    pub async fn replace_route(&self, what: &str, route: RouteMessage) -> Result<()> {
        self.handle
            .route()
            .add(route)
            .replace()
            .execute()
            .await
            .with_context(|| format!("set route {what} {}", self.place))
    }
}

//! Forwarding entries of VXLAN devices (`bridge fdb ... dev vxlan-N dst <peer>`), kept by the
//! agent from the peers the server names (l2population): one flood entry (the all-zero MAC)
//! per peer host, appended, and one entry per remote port's MAC. Entries the kernel learned,
//! the multicast group's default entry and entries without a destination are never touched.

use std::collections::BTreeSet;
use std::net::IpAddr;

use anyhow::{Context, Result};
use futures_util::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage,
    NetlinkPayload,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::RouteType;
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use super::netlink::{Link, Netlink, format_mac, parse_mac};

/// The all-zero MAC: the flood list (broadcast, multicast, unknown unicast).
pub const FLOOD_MAC: &str = "00:00:00:00:00:00";

/// One forwarding entry: frames to `mac` go to the tunnel endpoint `dst`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FdbEntry {
    pub mac: String,
    pub dst: IpAddr,
}

/// What a sync of one device changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FdbChanges {
    pub added: usize,
    pub removed: usize,
}

impl Netlink {
    /// The static entries with a unicast destination on `link` (ours to keep exact).
    pub async fn fdb_entries(&self, link: &Link) -> Result<BTreeSet<FdbEntry>> {
        let messages: Vec<NeighbourMessage> = self
            .handle()
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Bridge)
            .execute()
            .try_collect()
            .await
            .with_context(|| format!("list forwarding entries {}", self.place()))?;
        Ok(messages
            .into_iter()
            .filter(|m| m.header.ifindex == link.index)
            .filter(|m| {
                matches!(
                    m.header.state,
                    NeighbourState::Permanent | NeighbourState::Noarp
                )
            })
            .filter_map(|m| {
                let mut mac = None;
                let mut dst = None;
                for attribute in m.attributes {
                    match attribute {
                        NeighbourAttribute::LinkLayerAddress(bytes) => mac = Some(bytes),
                        NeighbourAttribute::Destination(address) => dst = ip_of(address),
                        _ => {}
                    }
                }
                let dst = dst.filter(|d| !d.is_multicast() && !d.is_unspecified())?;
                Some(FdbEntry {
                    mac: format_mac(&mac?),
                    dst,
                })
            })
            .collect())
    }

    /// Makes the entries of `link` with a unicast destination exactly `wanted`.
    pub async fn sync_fdb(&self, link: &Link, wanted: &BTreeSet<FdbEntry>) -> Result<FdbChanges> {
        let present = self.fdb_entries(link).await?;
        let mut changes = FdbChanges::default();
        for entry in present.difference(wanted) {
            self.fdb_request(link, entry, Request::Delete).await?;
            changes.removed += 1;
        }
        for entry in wanted.difference(&present) {
            // Several flood destinations share the all-zero MAC: appended, not replaced.
            let request = if entry.mac == FLOOD_MAC {
                Request::Append
            } else {
                Request::Replace
            };
            self.fdb_request(link, entry, request).await?;
            changes.added += 1;
        }
        Ok(changes)
    }

    async fn fdb_request(&self, link: &Link, entry: &FdbEntry, request: Request) -> Result<()> {
        let mut message = NeighbourMessage::default();
        message.header.family = AddressFamily::Bridge;
        message.header.ifindex = link.index;
        message.header.state = NeighbourState::Permanent;
        message.header.kind = RouteType::Unspec;
        // NTF_SELF: the VXLAN device's own table, not its bridge's (iproute2's default).
        message.header.flags = NeighbourFlags::Own;
        message.attributes = vec![
            NeighbourAttribute::LinkLayerAddress(parse_mac(&entry.mac)?),
            NeighbourAttribute::Destination(match entry.dst {
                IpAddr::V4(ip) => NeighbourAddress::Inet(ip),
                IpAddr::V6(ip) => NeighbourAddress::Inet6(ip),
            }),
        ];
        let (payload, flags, verb) = match request {
            Request::Append => (
                RouteNetlinkMessage::NewNeighbour(message),
                NLM_F_CREATE | NLM_F_APPEND,
                "append",
            ),
            Request::Replace => (
                RouteNetlinkMessage::NewNeighbour(message),
                NLM_F_CREATE | NLM_F_REPLACE,
                "replace",
            ),
            Request::Delete => (RouteNetlinkMessage::DelNeighbour(message), 0, "delete"),
        };
        let mut req = NetlinkMessage::from(payload);
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        let what = || {
            format!(
                "{verb} forwarding entry {} dst {} on {} {}",
                entry.mac,
                entry.dst,
                link.name,
                self.place()
            )
        };
        let mut handle = self.handle();
        let mut responses = handle.request(req).with_context(what)?;
        while let Some(message) = responses.next().await {
            if let NetlinkPayload::Error(e) = message.payload {
                // A deletion of what is already gone is done.
                if matches!(request, Request::Delete) && e.raw_code() == -ENOENT {
                    continue;
                }
                return Err(rtnetlink::Error::NetlinkError(e)).with_context(what);
            }
        }
        Ok(())
    }
}

const ENOENT: i32 = 2;

/// A destination as the kernel sends it: in bridge-family messages it is raw bytes (4 or 16).
fn ip_of(address: NeighbourAddress) -> Option<IpAddr> {
    match address {
        NeighbourAddress::Inet(ip) => Some(IpAddr::V4(ip)),
        NeighbourAddress::Inet6(ip) => Some(IpAddr::V6(ip)),
        NeighbourAddress::Other(bytes) => match bytes.len() {
            4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes.as_slice()).ok()?)),
            16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes.as_slice()).ok()?)),
            _ => None,
        },
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum Request {
    Append,
    Replace,
    Delete,
}

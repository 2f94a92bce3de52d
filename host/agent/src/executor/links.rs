//! The link operations of a plan: bridges, veth pairs, bridge ports, link settings, VXLAN,
//! VLAN and macvlan devices, removal. Each creates what is missing and corrects what differs.

use std::net::IpAddr;
use std::os::fd::AsRawFd;

use anyhow::{Context, Result, bail};
use neutrino_model::{
    AttachSpec, BridgeSpec, LinkRef, MacvlanMode, MacvlanSpec, VethSpec, VlanSpec, VxlanSpec,
};
use rtnetlink::packet_route::link::{
    BridgeStpState, InfoBridge, InfoData, InfoKind, InfoMacVlan, InfoVeth, InfoVlan, InfoVxlan,
    MacVlanMode as NlMacvlanMode,
};
use rtnetlink::{LinkBridge, LinkMacVlan, LinkMessageBuilder, LinkUnspec, LinkVeth, LinkVlan};

use super::connections::Connections;
use super::netlink::{Link, Netlink, parse_mac};
use super::{namespace, offload};

/// A Linux bridge as os-vif makes one: forward delay 0, STP off.
pub async fn ensure_bridge(c: &mut Connections, spec: &BridgeSpec) -> Result<()> {
    let host = &c.host();
    let options =
        |b: LinkMessageBuilder<LinkBridge>| b.forward_delay(0).stp_state(BridgeStpState::Disabled);
    let Some(bridge) = host.link(&spec.name).await? else {
        let mut b = options(LinkMessageBuilder::<LinkBridge>::new(&spec.name));
        if let Some(mtu) = spec.mtu {
            b = b.mtu(mtu);
        }
        return host.add(&format!("bridge {}", spec.name), b.build()).await;
    };
    expect_kind(&bridge, "bridge", host)?;
    let infos = match &bridge.info {
        Some(InfoData::Bridge(infos)) => infos.as_slice(),
        _ => &[],
    };
    let settled = infos.contains(&InfoBridge::ForwardDelay(0))
        && infos.contains(&InfoBridge::StpState(BridgeStpState::Disabled));
    if !settled {
        let b = options(LinkMessageBuilder::<LinkBridge>::new(&spec.name)).index(bridge.index);
        host.change(&format!("bridge {}", spec.name), b.build())
            .await?;
    }
    host.correct(&bridge, spec.mtu, None, None).await
}

/// A veth pair, `name` in the host namespace and `peer` (with its MAC) in its namespace. A
/// pair that is not exactly this one (a half left over, a peer elsewhere) is made anew.
pub async fn ensure_veth(c: &mut Connections, spec: &VethSpec) -> Result<()> {
    let host = &c.host();
    let ns = spec.peer_namespace.as_deref();
    let other = c.get(ns).await?;
    let mac = spec.peer_mac.as_deref().map(parse_mac).transpose()?;
    let local = host.link(&spec.name).await?;
    let peer = other.link(&spec.peer).await?;
    match (&local, &peer) {
        (Some(l), Some(p)) if is_pair(l, p) => {
            host.correct(l, spec.mtu, None, None).await?;
            other.correct(p, spec.mtu, mac.as_deref(), None).await?;
        }
        _ => {
            // Deleting one end deletes the other: look again before deleting the peer.
            if let Some(l) = &local {
                host.delete(l).await?;
            }
            if let Some(p) = other.link(&spec.peer).await? {
                other.delete(&p).await?;
            }
            create_veth(host, spec, mac).await?;
        }
    }
    if let Some(ns) = ns {
        offload::tx_checksum_off(ns, &spec.peer).await?;
    }
    Ok(())
}

fn is_pair(local: &Link, peer: &Link) -> bool {
    local.is("veth")
        && peer.is("veth")
        && local.link == Some(peer.index)
        && peer.link == Some(local.index)
}

/// Creates the pair with the peer made directly in its namespace under its own name, so a
/// peer called `eth0` never meets the host's `eth0`.
async fn create_veth(host: &Netlink, spec: &VethSpec, mac: Option<Vec<u8>>) -> Result<()> {
    let ns_file = spec
        .peer_namespace
        .as_deref()
        .map(namespace::open)
        .transpose()?;
    let mut peer = LinkUnspec::new_with_name(&spec.peer);
    if let Some(mtu) = spec.mtu {
        peer = peer.mtu(mtu);
    }
    if let Some(mac) = mac {
        peer = peer.address(mac);
    }
    if let Some(file) = &ns_file {
        peer = peer.setns_by_fd(file.as_raw_fd());
    }
    let mut veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(spec.name.clone())
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())));
    if let Some(mtu) = spec.mtu {
        veth = veth.mtu(mtu);
    }
    host.add(
        &format!("veth {} <-> {}", spec.name, spec.peer),
        veth.build(),
    )
    .await
}

/// Makes the bridge the link's controller.
pub async fn attach(c: &mut Connections, spec: &AttachSpec) -> Result<()> {
    let host = &c.host();
    let bridge = host
        .link(&spec.bridge)
        .await?
        .with_context(|| format!("bridge {} does not exist", spec.bridge))?;
    let link = host.existing(&spec.link).await?;
    if link.controller == Some(bridge.index) {
        return Ok(());
    }
    let msg = LinkUnspec::new_with_index(link.index).controller(bridge.index);
    host.change(
        &format!("the controller of {} to {}", spec.link, spec.bridge),
        msg.build(),
    )
    .await
}

/// A VXLAN device. Its identity (VNI, addresses, port, underlay) cannot change in place: a
/// device that differs is made anew.
pub async fn ensure_vxlan(c: &mut Connections, spec: &VxlanSpec) -> Result<()> {
    let host = &c.host();
    let mut wanted = vec![InfoVxlan::Id(spec.vni), InfoVxlan::Port(spec.dst_port)];
    let mut b = rtnetlink::LinkVxlan::new(&spec.name, spec.vni).port(spec.dst_port);
    if let Some(local) = &spec.local_ip {
        match parse_ip(local, "local address")? {
            IpAddr::V4(ip) => (b, wanted) = (b.local(ip), with(wanted, InfoVxlan::Local(ip))),
            IpAddr::V6(ip) => {
                (b, wanted) = (b.local6(ip), with(wanted, InfoVxlan::Local6(ip)));
            }
        }
    }
    if let Some(group) = &spec.group {
        match parse_ip(group, "group")? {
            IpAddr::V4(ip) => (b, wanted) = (b.group(ip), with(wanted, InfoVxlan::Group(ip))),
            IpAddr::V6(ip) => {
                (b, wanted) = (b.group6(ip), with(wanted, InfoVxlan::Group6(ip)));
            }
        }
    }
    if let Some(dev) = &spec.underlay_device {
        let dev = host.existing(dev).await?;
        (b, wanted) = (b.dev(dev.index), with(wanted, InfoVxlan::Link(dev.index)));
    } else if let (Some(_), Some(local)) = (&spec.group, &spec.local_ip) {
        // The kernel needs the underlay device to join a group (EINVAL without it); as
        // Neutron's Linux bridge agent, it is the device holding the local address.
        let local = parse_ip(local, "local address")?;
        let index = host.link_with_address(local).await?.with_context(|| {
            format!(
                "no device holds the local address {local} {}, needed to join group {}",
                host.place(),
                spec.group.as_deref().unwrap_or_default()
            )
        })?;
        (b, wanted) = (b.dev(index), with(wanted, InfoVxlan::Link(index)));
    }
    if let Some(mtu) = spec.mtu {
        b = b.mtu(mtu);
    }
    if let Some(existing) = host.link(&spec.name).await? {
        let same = existing.is("vxlan")
            && match &existing.info {
                Some(InfoData::Vxlan(infos)) => wanted.iter().all(|w| infos.contains(w)),
                _ => false,
            };
        if same {
            return host.correct(&existing, spec.mtu, None, None).await;
        }
        host.delete(&existing).await?;
    }
    host.add(&format!("vxlan {}", spec.name), b.build()).await
}

fn with(mut infos: Vec<InfoVxlan>, info: InfoVxlan) -> Vec<InfoVxlan> {
    infos.push(info);
    infos
}

/// An 802.1Q sub-interface of `parent`; one with another parent or id is made anew.
pub async fn ensure_vlan(c: &mut Connections, spec: &VlanSpec) -> Result<()> {
    let host = &c.host();
    let parent = host.existing(&spec.parent).await?;
    if let Some(existing) = host.link(&spec.name).await? {
        let same = existing.is("vlan")
            && existing.link == Some(parent.index)
            && matches!(&existing.info, Some(InfoData::Vlan(infos))
                if infos.contains(&InfoVlan::Id(spec.vlan_id)));
        if same {
            return host.correct(&existing, spec.mtu, None, None).await;
        }
        host.delete(&existing).await?;
    }
    let mut b = LinkVlan::new(&spec.name, parent.index, spec.vlan_id);
    if let Some(mtu) = spec.mtu {
        b = b.mtu(mtu);
    }
    host.add(&format!("vlan {}", spec.name), b.build()).await
}

/// A macvlan on a host link, made directly in its namespace under its own name.
pub async fn ensure_macvlan(c: &mut Connections, spec: &MacvlanSpec) -> Result<()> {
    let host = &c.host();
    let ns = spec.namespace.as_deref();
    let target = c.get(ns).await?;
    let mac = spec.mac.as_deref().map(parse_mac).transpose()?;
    let mode = match spec.mode {
        MacvlanMode::Bridge => NlMacvlanMode::Bridge,
        MacvlanMode::Vepa => NlMacvlanMode::Vepa,
        MacvlanMode::Private => NlMacvlanMode::Private,
        MacvlanMode::Passthru => NlMacvlanMode::Passthrough,
    };
    if let Some(existing) = target.link(&spec.name).await? {
        expect_kind(&existing, "macvlan", &target)?;
        let same_mode = matches!(&existing.info, Some(InfoData::MacVlan(infos))
            if infos.contains(&InfoMacVlan::Mode(mode)));
        if same_mode {
            return target
                .correct(&existing, spec.mtu, mac.as_deref(), None)
                .await;
        }
        target.delete(&existing).await?;
    }
    let parent = host.existing(&spec.parent).await?;
    let ns_file = ns.map(namespace::open).transpose()?;
    let mut b = LinkMacVlan::new(&spec.name, parent.index, mode);
    if let Some(mtu) = spec.mtu {
        b = b.mtu(mtu);
    }
    if let Some(mac) = mac {
        b = b.address(mac);
    }
    if let Some(file) = &ns_file {
        b = b.setns_by_fd(file.as_raw_fd());
    }
    host.add(&format!("macvlan {}", spec.name), b.build()).await
}

/// Deletes the link (a veth's peer goes with it); a link or namespace already gone is fine.
pub async fn remove_link(c: &mut Connections, spec: &LinkRef) -> Result<()> {
    if let Some(ns) = spec.namespace.as_deref()
        && !namespace::exists(ns)
    {
        return Ok(());
    }
    let nl = c.get(spec.namespace.as_deref()).await?;
    match nl.link(&spec.name).await? {
        // A device with no link kind is a physical NIC or the loopback: plans use those,
        // never remove them, whatever the plan's check said.
        Some(link) if link.kind.is_none() => bail!(
            "link {} {} is a plain device (a physical interface or loopback); plans never \
             remove one",
            link.name,
            nl.place()
        ),
        Some(link) => nl.delete(&link).await,
        None => Ok(()),
    }
}

fn expect_kind(link: &Link, kind: &str, nl: &Netlink) -> Result<()> {
    if !link.is(kind) {
        bail!(
            "link {} {} is a {}, not a {kind}",
            link.name,
            nl.place(),
            link.kind.as_deref().unwrap_or("plain device")
        );
    }
    Ok(())
}

pub fn parse_ip(text: &str, what: &str) -> Result<IpAddr> {
    text.parse()
        .with_context(|| format!("{what} {text:?} is not an IP address"))
}

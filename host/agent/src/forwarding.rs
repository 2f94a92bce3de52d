//! l2population on this host: the server names, per network this host has bound ports on, the
//! other hosts holding ports there (their tunnel endpoints and their ports' MACs); the agent
//! keeps the forwarding entries of the network's VXLAN devices (those its drivers' setup plans
//! made) exact: a flood entry per peer (unicast mode) and an entry per remote MAC. Synced after
//! every feed answer and every repair, so a device made anew gets its entries back.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use neutrino_model::VxlanSpec;

use super::executor::{Executor, FLOOD_MAC, FdbEntry};
use super::protocol::{NetworkPeersChange, Peer};

#[derive(Debug, Default)]
pub struct Forwarding {
    /// network id -> the other hosts with ports bound on it.
    peers: HashMap<String, Vec<Peer>>,
}

impl Forwarding {
    /// Takes the peers of one feed answer; with `full`, networks not named have no peers.
    pub fn update(&mut self, changes: &[NetworkPeersChange], full: bool) {
        if full {
            self.peers.clear();
        }
        for change in changes {
            if change.peers.is_empty() {
                self.peers.remove(&change.id);
            } else {
                self.peers.insert(change.id.clone(), change.peers.clone());
            }
        }
    }

    /// The entries `device` of `network_id` must hold: with no multicast group, a flood entry
    /// per peer (the group floods otherwise); an entry per remote MAC either way. A peer at
    /// this device's own address, or with an address that is not one, is skipped.
    pub fn wanted(&self, network_id: &str, device: &VxlanSpec) -> BTreeSet<FdbEntry> {
        let local: Option<IpAddr> = device.local_ip.as_deref().and_then(|ip| ip.parse().ok());
        let mut wanted = BTreeSet::new();
        for peer in self.peers.get(network_id).into_iter().flatten() {
            let Ok(dst) = peer.tunnel_ip.parse::<IpAddr>() else {
                tracing::warn!(
                    "host {}: tunnel endpoint {:?} is not an address",
                    peer.host,
                    peer.tunnel_ip
                );
                continue;
            };
            if Some(dst) == local || local.is_some_and(|l| l.is_ipv4() != dst.is_ipv4()) {
                continue;
            }
            if device.group.is_none() {
                wanted.insert(FdbEntry {
                    mac: FLOOD_MAC.into(),
                    dst,
                });
            }
            wanted.extend(peer.macs.iter().map(|mac| FdbEntry {
                mac: mac.to_ascii_lowercase(),
                dst,
            }));
        }
        wanted
    }

    /// Makes every tunnel device's entries exact. Failures are logged (the next answer or
    /// check tries again).
    pub async fn sync(&self, executor: &Executor, devices: &[(String, VxlanSpec)]) {
        for (network_id, device) in devices {
            let wanted = self.wanted(network_id, device);
            match executor.sync_forwarding(&device.name, None, &wanted).await {
                Ok(Some(changes)) if changes.added + changes.removed > 0 => tracing::info!(
                    "network {network_id}: {}: {} forwarding entries added, {} removed",
                    device.name,
                    changes.added,
                    changes.removed
                ),
                Ok(_) => {}
                Err(e) => tracing::error!("network {network_id}: {}: {e:#}", device.name),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(group: Option<&str>) -> VxlanSpec {
        VxlanSpec {
            name: "vxlan-7".into(),
            vni: 7,
            local_ip: Some("10.0.0.1".into()),
            group: group.map(str::to_string),
            underlay_device: None,
            dst_port: 4789,
            mtu: None,
        }
    }

    fn peer(host: &str, ip: &str, macs: &[&str]) -> Peer {
        Peer {
            host: host.into(),
            tunnel_ip: ip.into(),
            macs: macs.iter().map(|m| m.to_string()).collect(),
        }
    }

    #[test]
    fn unicast_floods_to_each_peer_and_multicast_leaves_flooding_to_the_group() {
        let mut f = Forwarding::default();
        f.update(
            &[NetworkPeersChange {
                id: "n".into(),
                peers: vec![
                    peer("b", "10.0.0.2", &["FA:16:3E:00:00:01"]),
                    peer("me-again", "10.0.0.1", &["fa:16:3e:00:00:09"]),
                    peer("bad", "not-an-ip", &["fa:16:3e:00:00:08"]),
                ],
            }],
            true,
        );
        let dst: IpAddr = "10.0.0.2".parse().unwrap();
        let unicast = f.wanted("n", &device(None));
        assert_eq!(
            unicast.into_iter().collect::<Vec<_>>(),
            vec![
                FdbEntry {
                    mac: FLOOD_MAC.into(),
                    dst
                },
                FdbEntry {
                    mac: "fa:16:3e:00:00:01".into(),
                    dst
                },
            ]
        );
        let multicast = f.wanted("n", &device(Some("239.1.1.1")));
        assert_eq!(multicast.len(), 1);
        assert!(f.wanted("other", &device(None)).is_empty());
        // A full answer that does not name the network: no peers any more.
        f.update(&[], true);
        assert!(f.wanted("n", &device(None)).is_empty());
    }
}

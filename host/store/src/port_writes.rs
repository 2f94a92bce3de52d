//! The writes of one port-create transaction. Grouped (several requests' creates in one
//! transaction, see `api::port_writer`), the row inserts are held back and written as
//! multi-row INSERTs at the end; alone, every row is written at once, so that a conflict is
//! known for the port that caused it. Either way lowest-address allocations come from ranges
//! kept in memory ([`LowestFree`]) and are written back at the end, and so are the change-feed
//! entries of the ports (one revision for the whole transaction).
//!
//! A generated MAC is chosen before anything is made from it (SLAAC addresses, address pairs,
//! the binding): [`PortWrites::generated_mac`] gives one that no port of the network holds and
//! that this transaction has not given yet, generating again for that port alone when one
//! collides (up to Neutron's `mac_generation_retries`). [`PortWrites::prepare_macs`] checks a
//! whole batch's in a few statements first.

use std::collections::{HashMap, HashSet};

use sqlx::{Any, Transaction};

use super::dhcp_hosting;
use super::feed::FeedEntries;
use super::ipam::{self, Allocation, LowestFree};
use super::ports::{self, Port};
use neutrino_ipam::{MAC_GENERATION_RETRIES, MacGenerator};

type Tx<'a> = Transaction<'a, Any>;

#[derive(Debug, Default)]
pub struct PortWrites {
    held_back: bool,
    pub lowest: LowestFree,
    ports: Vec<Port>,
    allocations: Vec<Allocation>,
    feed: FeedEntries,
    /// The DHCP host of each network written to (None: not served), looked up once.
    dhcp_hosts: HashMap<String, Vec<String>>,
    /// The MACs this transaction has given ports, by network.
    macs_given: HashMap<String, HashSet<String>>,
    /// Generated MACs found free on their network in this transaction, not given yet.
    macs_ready: HashMap<String, Vec<String>>,
}

/// How [`PortWrites::finish`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Finished {
    /// Everything is written; pass the feed revision (if any) to `state.feed` after commit.
    Written { revision: Option<i64> },
    /// A held-back row was refused (an address or MAC already used): do not commit.
    Refused,
}

impl PortWrites {
    /// Rows held back until [`PortWrites::finish`].
    pub fn grouped() -> PortWrites {
        PortWrites {
            held_back: true,
            ..PortWrites::default()
        }
    }

    /// Rows written at once.
    pub fn alone() -> PortWrites {
        PortWrites::default()
    }

    /// Generates MACs for the ports about to be written (`wanted`: how many on each network)
    /// and checks them all at once (a few statements however many ports and networks),
    /// generating again those that collide, so that [`PortWrites::generated_mac`] hands them
    /// out without a query each.
    pub async fn prepare_macs(
        &mut self,
        tx: &mut Tx<'_>,
        generator: &MacGenerator,
        wanted: &[(String, usize)],
    ) -> crate::Result<()> {
        let mut missing: HashMap<&str, usize> =
            wanted.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        for _ in 0..MAC_GENERATION_RETRIES {
            let mut candidates: Vec<(String, String)> = Vec::new();
            for (network, count) in &missing {
                let given = self.macs_given.get(*network);
                for _ in 0..*count {
                    let mac = generator.next_mac().0;
                    let pair = (network.to_string(), mac);
                    if given.is_none_or(|g| !g.contains(&pair.1)) && seen.insert(pair.clone()) {
                        candidates.push(pair);
                    }
                }
            }
            if candidates.is_empty() {
                break;
            }
            let used: HashSet<(String, String)> = ports::macs_in_use_on(tx, &candidates)
                .await?
                .into_iter()
                .collect();
            for (network, mac) in candidates {
                if used.contains(&(network.clone(), mac.clone())) {
                    continue;
                }
                if let Some(count) = missing.get_mut(network.as_str()) {
                    *count -= 1;
                }
                self.macs_ready.entry(network).or_default().push(mac);
            }
            missing.retain(|_, count| *count > 0);
        }
        Ok(())
    }

    /// Reads the DHCP hosts of each of `network_ids` at once, for the feed entries of the ports
    /// about to be written there.
    pub async fn prepare_dhcp_hosts(
        &mut self,
        tx: &mut Tx<'_>,
        network_ids: &[String],
    ) -> crate::Result<()> {
        let unknown: Vec<String> = network_ids
            .iter()
            .filter(|n| !self.dhcp_hosts.contains_key(*n))
            .cloned()
            .collect();
        let mut hosts = dhcp_hosting::hosts_of_networks(tx, &unknown).await?;
        for network in unknown {
            let host = hosts.remove(&network).unwrap_or_default();
            self.dhcp_hosts.insert(network, host);
        }
        Ok(())
    }

    /// A generated MAC for a port on `network_id` that no port there holds and this
    /// transaction has not given (prepared, or generated and checked now). One that collides
    /// is generated again, [`MAC_GENERATION_RETRIES`] times at most; None after that.
    pub async fn generated_mac(
        &mut self,
        tx: &mut Tx<'_>,
        generator: &MacGenerator,
        network_id: &str,
    ) -> crate::Result<Option<String>> {
        let given = self.macs_given.entry(network_id.to_string()).or_default();
        if let Some(ready) = self.macs_ready.get_mut(network_id) {
            while let Some(mac) = ready.pop() {
                if given.insert(mac.clone()) {
                    return Ok(Some(mac));
                }
            }
        }
        for _ in 0..MAC_GENERATION_RETRIES {
            let mac = generator.next_mac().0;
            if self.given_mac(tx, network_id, &mac).await? {
                return Ok(Some(mac));
            }
        }
        Ok(None)
    }

    /// Gives `mac` to a port on `network_id` unless a port there holds it or this transaction
    /// has given it already (false then).
    pub async fn given_mac(
        &mut self,
        tx: &mut Tx<'_>,
        network_id: &str,
        mac: &str,
    ) -> crate::Result<bool> {
        let given = self.macs_given.entry(network_id.to_string()).or_default();
        if given.contains(mac)
            || !ports::macs_in_use(tx, network_id, &[mac.to_string()])
                .await?
                .is_empty()
        {
            return Ok(false);
        }
        given.insert(mac.to_string());
        Ok(true)
    }

    /// Records an address of a port. False when someone already holds it; held back, that is
    /// only known at [`PortWrites::finish`].
    pub async fn record(&mut self, tx: &mut Tx<'_>, a: Allocation) -> crate::Result<bool> {
        if self.held_back {
            self.allocations.push(a);
            return Ok(true);
        }
        Ok(ipam::record(tx, std::slice::from_ref(&a)).await? == 1)
    }

    /// Inserts the port row. False when its MAC is already used on the network; held back,
    /// that is only known at [`PortWrites::finish`].
    pub async fn insert_port(&mut self, tx: &mut Tx<'_>, p: &Port) -> crate::Result<bool> {
        if self.held_back {
            self.ports.push(p.clone());
            return Ok(true);
        }
        Ok(ports::insert(tx, std::slice::from_ref(p)).await? == 1)
    }

    /// The port changed: news for `hosts` (its binding host, before and after) and for its
    /// network's DHCP hosts, written at [`PortWrites::finish`].
    pub async fn port_changed(
        &mut self,
        tx: &mut Tx<'_>,
        p: &Port,
        hosts: &[&str],
    ) -> crate::Result<()> {
        if !self.dhcp_hosts.contains_key(&p.network_id) {
            let hostings = dhcp_hosting::of_network(&mut **tx, &p.network_id).await?;
            self.dhcp_hosts.insert(
                p.network_id.clone(),
                hostings.into_iter().map(|h| h.host).collect(),
            );
        }
        let dhcp_hosts = &self.dhcp_hosts[&p.network_id];
        dhcp_hosting::add_port(&mut self.feed, &p.network_id, &p.id, hosts, dhcp_hosts);
        Ok(())
    }

    /// Writes everything held back, the free ranges taken from and the feed entries. Refused
    /// when a held-back row was: the caller does not commit, and writes the ports again alone
    /// to find out whose it was.
    pub async fn finish(&mut self, tx: &mut Tx<'_>) -> crate::Result<Finished> {
        self.lowest.flush(tx).await?;
        let ports = std::mem::take(&mut self.ports);
        let allocations = std::mem::take(&mut self.allocations);
        // Ports first: the addresses' foreign key is deferred, but this order needs no deferral.
        let ports_ok = ports::insert(tx, &ports).await? == ports.len() as u64;
        let addresses_ok = ipam::record(tx, &allocations).await? == allocations.len() as u64;
        if !(ports_ok && addresses_ok) {
            return Ok(Finished::Refused);
        }
        let revision = self.feed.write(tx).await?;
        Ok(Finished::Written { revision })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::networks::{self, Network};
    use crate::subnets::{self, Subnet};
    use crate::{Store, now};
    use neutrino_ipam::{Range, key};

    /// A real SQLite database with one subnet whose free ranges are `ranges`.
    async fn subnet_with(ranges: &[Range]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        let mut tx = store.begin_write().await.unwrap();
        let network = Network {
            id: "n1".into(),
            project_id: "p".into(),
            name: String::new(),
            description: String::new(),
            admin_state_up: true,
            status: "ACTIVE".into(),
            shared: false,
            external: false,
            is_default: false,
            port_security_enabled: true,
            mtu: 1500,
            network_type: "local".into(),
            physical_network: None,
            segmentation_id: None,
            availability_zone_hints: "[]".into(),
            created_at: now(),
            updated_at: now(),
            revision_number: 1,
        };
        networks::insert(&mut tx, &network).await.unwrap();
        let subnet = Subnet {
            id: "s1".into(),
            project_id: "p".into(),
            network_id: "n1".into(),
            name: String::new(),
            description: String::new(),
            ip_version: 4,
            cidr: "10.0.0.0/24".into(),
            gateway_ip: None,
            enable_dhcp: false,
            ipv6_ra_mode: None,
            ipv6_address_mode: None,
            allocation_pools: "[]".into(),
            dns_nameservers: "[]".into(),
            host_routes: "[]".into(),
            subnetpool_id: None,
            created_at: now(),
            updated_at: now(),
            revision_number: 1,
        };
        subnets::insert(&mut tx, &subnet).await.unwrap();
        ipam::add_ranges(&mut tx, "s1", ranges).await.unwrap();
        tx.commit().await.unwrap();
        (dir, store)
    }

    async fn stored_ranges(tx: &mut Tx<'_>) -> Vec<(String, String)> {
        sqlx::query_as("SELECT first_ip, last_ip FROM ip_free_ranges ORDER BY first_ip")
            .fetch_all(&mut **tx)
            .await
            .unwrap()
    }

    fn allocation(ip: u128, port_id: &str) -> Allocation {
        Allocation {
            subnet_id: "s1".into(),
            ip,
            ip_address: format!("10.0.0.{ip}"),
            port_id: port_id.into(),
            position: 0,
        }
    }

    #[tokio::test]
    async fn lowest_addresses_cross_ranges_and_are_written_back() {
        let ranges = [
            Range {
                first: 10,
                last: 11,
            },
            Range {
                first: 20,
                last: 22,
            },
        ];
        let (_dir, store) = subnet_with(&ranges).await;
        let mut tx = store.begin_write().await.unwrap();
        let mut lowest = LowestFree::default();
        let mut taken = Vec::new();
        for _ in 0..3 {
            taken.push(lowest.take(&mut tx, "s1").await.unwrap());
        }
        assert_eq!(taken, [Some(10), Some(11), Some(20)]);
        // Nothing of the range in use is written before the flush; the used-up one is gone.
        assert_eq!(stored_ranges(&mut tx).await, [(key(20), key(22))]);
        lowest.flush(&mut tx).await.unwrap();
        assert_eq!(stored_ranges(&mut tx).await, [(key(21), key(22))]);
        for _ in 0..2 {
            lowest.take(&mut tx, "s1").await.unwrap();
        }
        assert_eq!(lowest.take(&mut tx, "s1").await.unwrap(), None);
        lowest.flush(&mut tx).await.unwrap();
        assert!(stored_ranges(&mut tx).await.is_empty());
    }

    #[tokio::test]
    async fn ranges_of_many_subnets_are_read_and_written_back_together() {
        let (_dir, store) = subnet_with(&[Range {
            first: 10,
            last: 20,
        }])
        .await;
        let mut tx = store.begin_write().await.unwrap();
        let mut s2 = subnets::get(&mut *tx, "s1").await.unwrap().unwrap();
        s2.id = "s2".into();
        subnets::insert(&mut tx, &s2).await.unwrap();
        ipam::add_ranges(
            &mut tx,
            "s2",
            &[Range { first: 5, last: 6 }, Range { first: 8, last: 9 }],
        )
        .await
        .unwrap();
        let mut lowest = LowestFree::default();
        let ids = ["s2".to_string(), "s1".to_string(), "s3".to_string()];
        lowest
            .prepare(&mut tx, crate::Backend::Sqlite, &ids)
            .await
            .unwrap();
        assert!(lowest.holds("s1") && lowest.holds("s2") && !lowest.holds("s3"));
        let mut taken = Vec::new();
        for subnet in ["s1", "s2", "s1", "s2", "s2"] {
            taken.push(lowest.take(&mut tx, subnet).await.unwrap().unwrap());
        }
        assert_eq!(taken, [10, 5, 11, 6, 8]);
        lowest.flush(&mut tx).await.unwrap();
        let stored: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT subnet_id, first_ip, last_ip FROM ip_free_ranges ORDER BY subnet_id, first_ip",
        )
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        assert_eq!(
            stored,
            [
                ("s1".into(), key(12), key(20)),
                ("s2".into(), key(9), key(9)),
            ]
        );
    }

    /// A port on n1 holding `mac`, written at once.
    async fn port_with(tx: &mut Tx<'_>, id: &str, mac: &str) {
        let port = Port {
            id: id.into(),
            project_id: "p".into(),
            network_id: "n1".into(),
            mac_address: mac.into(),
            ..Port::default()
        };
        assert_eq!(ports::insert(tx, &[port]).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn generated_macs_skip_those_taken_up_to_the_retry_count() {
        let (_dir, store) = subnet_with(&[]).await;
        let seed = 11;
        let sequence: Vec<String> = {
            let g = MacGenerator::seeded(seed);
            (0..40).map(|_| g.next_mac().0).collect()
        };
        let mut tx = store.begin_write().await.unwrap();
        // One fewer taken than the retries: the last try gets the next MAC.
        for (i, mac) in sequence[..MAC_GENERATION_RETRIES - 1].iter().enumerate() {
            port_with(&mut tx, &format!("old{i}"), mac).await;
        }
        let mut writes = PortWrites::alone();
        let generator = MacGenerator::seeded(seed);
        let got = writes
            .generated_mac(&mut tx, &generator, "n1")
            .await
            .unwrap();
        assert_eq!(
            got.as_deref(),
            Some(sequence[MAC_GENERATION_RETRIES - 1].as_str())
        );
        // Given once in this transaction (not written yet): not again, given or generated.
        let again = &sequence[MAC_GENERATION_RETRIES - 1];
        assert!(!writes.given_mac(&mut tx, "n1", again).await.unwrap());
        assert!(!writes.given_mac(&mut tx, "n1", &sequence[0]).await.unwrap());
        assert!(writes.given_mac(&mut tx, "n2", &sequence[0]).await.unwrap());
        drop(tx);

        // As many taken as the retries: no MAC.
        let mut tx = store.begin_write().await.unwrap();
        for (i, mac) in sequence[..MAC_GENERATION_RETRIES].iter().enumerate() {
            port_with(&mut tx, &format!("old{i}"), mac).await;
        }
        let generator = MacGenerator::seeded(seed);
        let mut writes = PortWrites::alone();
        assert_eq!(
            writes
                .generated_mac(&mut tx, &generator, "n1")
                .await
                .unwrap(),
            None
        );

        // Prepared for a batch: the taken ones are generated again, none is handed out twice.
        let generator = MacGenerator::seeded(seed);
        let mut writes = PortWrites::grouped();
        writes
            .prepare_macs(&mut tx, &generator, &[("n1".to_string(), 20)])
            .await
            .unwrap();
        let mut handed = HashSet::new();
        for _ in 0..20 {
            let mac = writes
                .generated_mac(&mut tx, &generator, "n1")
                .await
                .unwrap();
            assert!(handed.insert(mac.unwrap()));
        }
        assert!(
            handed
                .iter()
                .all(|m| !sequence[..MAC_GENERATION_RETRIES].contains(m))
        );
        assert!(handed.iter().all(|m| sequence.contains(m)), "not prepared");
    }

    #[tokio::test]
    async fn held_back_rows_are_written_in_statements_of_the_backends_size() {
        let (_dir, store) = subnet_with(&[Range {
            first: 1,
            last: 200,
        }])
        .await;
        let per_statement = crate::Backend::Sqlite.rows_per_statement(24, 0);
        let n = 2 * per_statement + 3;
        let mut tx = store.begin_write().await.unwrap();
        let mut grouped = PortWrites::grouped();
        for i in 0..n {
            let port = Port {
                id: format!("p{i}"),
                project_id: "p".into(),
                network_id: "n1".into(),
                mac_address: format!("fa:16:3e:00:00:{i:02x}"),
                ..Port::default()
            };
            assert!(grouped.insert_port(&mut tx, &port).await.unwrap());
            let a = allocation(i as u128 + 1, &port.id);
            assert!(grouped.record(&mut tx, a).await.unwrap());
        }
        assert!(matches!(
            grouped.finish(&mut tx).await.unwrap(),
            Finished::Written { .. }
        ));
        let counts: (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM ports), (SELECT COUNT(*) FROM ip_allocations)",
        )
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_eq!(counts, (n as i64, n as i64));
    }

    #[tokio::test]
    async fn a_held_back_duplicate_fails_the_batch_and_alone_it_is_known_at_once() {
        let (_dir, store) = subnet_with(&[Range { first: 1, last: 9 }]).await;
        let mut tx = store.begin_write().await.unwrap();
        let mut grouped = PortWrites::grouped();
        assert!(grouped.record(&mut tx, allocation(5, "a")).await.unwrap());
        assert!(grouped.record(&mut tx, allocation(5, "b")).await.unwrap());
        assert_eq!(grouped.finish(&mut tx).await.unwrap(), Finished::Refused);
        drop(tx);

        let mut tx = store.begin_write().await.unwrap();
        let mut alone = PortWrites::alone();
        assert!(alone.record(&mut tx, allocation(5, "a")).await.unwrap());
        assert!(!alone.record(&mut tx, allocation(5, "b")).await.unwrap());
        assert_eq!(
            alone.finish(&mut tx).await.unwrap(),
            Finished::Written { revision: None }
        );
    }
}

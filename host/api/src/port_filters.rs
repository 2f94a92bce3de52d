//! What a host's firewall needs for the ports bound to it, as Neutron's
//! `security_group_info_for_devices` gives it: each filtered port's rules (its groups' rules,
//! flattened) and the member addresses of the remote groups those rules name.

use std::collections::{BTreeSet, HashMap};

use neutrino_proto::{AddressPair, FilterRule, PortFilter, RemoteGroupChange};
use neutrino_store::ports::Port;
use neutrino_store::{self as store, port_groups};

use super::error::ApiResult;

/// The groups looked up so far (each read once per answer), and the remote groups named.
#[derive(Default)]
pub struct Filters {
    /// Group id -> (stateful, rules); None for a group that is gone.
    groups: HashMap<String, Option<(bool, Vec<FilterRule>)>>,
    /// Remote groups the filters built so far name.
    pub remote: BTreeSet<String>,
}

impl Filters {
    /// The port's filter: None when its port security is off or it is a network service's
    /// port (`network:*`, trusted as in Neutron).
    pub async fn of_port(
        &mut self,
        conn: &mut store::Conn,
        p: &Port,
    ) -> ApiResult<Option<PortFilter>> {
        if !p.port_security_enabled || p.device_owner.starts_with("network:") {
            return Ok(None);
        }
        let mut filter = PortFilter {
            stateful: false,
            rules: Vec::new(),
            allowed_address_pairs: address_pairs(p),
        };
        let groups = port_groups::groups_of(p);
        let unknown: Vec<String> = groups
            .iter()
            .filter(|g| !self.groups.contains_key(*g))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            self.read(conn, &unknown).await?;
        }
        // No group: nothing allowed but DHCP (Neutron's ports with an empty list).
        filter.stateful = groups.is_empty();
        for g in &groups {
            if let Some(Some((stateful, rules))) = self.groups.get(g) {
                filter.stateful |= *stateful;
                filter.rules.extend(rules.iter().cloned());
            }
        }
        self.remote.extend(
            filter
                .rules
                .iter()
                .filter_map(|r| r.remote_group_id.clone()),
        );
        Ok(Some(filter))
    }

    async fn read(&mut self, conn: &mut store::Conn, ids: &[String]) -> ApiResult<()> {
        let rules = store::security_groups::rules_of(&mut *conn, ids).await?;
        for (id, stateful) in store::security_groups::usable(&mut *conn, ids, None).await? {
            let of_group = rules
                .iter()
                .filter(|r| r.security_group_id == id)
                .map(|r| {
                    let f = &r.fields;
                    FilterRule {
                        direction: f.direction.clone(),
                        ethertype: f.ethertype.clone(),
                        protocol: f.protocol.clone(),
                        port_range_min: f.port_range_min.and_then(|v| u32::try_from(v).ok()),
                        port_range_max: f.port_range_max.and_then(|v| u32::try_from(v).ok()),
                        remote_ip_prefix: f.remote_ip_prefix.clone(),
                        remote_group_id: f.remote_group_id.clone(),
                    }
                })
                .collect();
            self.groups.insert(id, Some((stateful, of_group)));
        }
        for id in ids {
            self.groups.entry(id.clone()).or_insert(None);
        }
        Ok(())
    }
}

/// The members of each of `groups`, as an answer carries them.
pub async fn remote_groups(
    conn: &mut store::Conn,
    groups: &BTreeSet<String>,
) -> ApiResult<Vec<RemoteGroupChange>> {
    let mut members = port_groups::members(&mut *conn, groups).await?;
    Ok(groups
        .iter()
        .map(|id| RemoteGroupChange {
            id: id.clone(),
            members: Some(members.remove(id).unwrap_or_default()),
        })
        .collect())
}

/// The port's allowed address pairs as stored (`[{"ip_address", "mac_address"}]`).
fn address_pairs(p: &Port) -> Vec<AddressPair> {
    let pairs: Vec<serde_json::Value> =
        serde_json::from_str(&p.allowed_address_pairs).unwrap_or_default();
    pairs
        .iter()
        .filter_map(|pair| {
            Some(AddressPair {
                ip_address: pair["ip_address"].as_str()?.to_string(),
                mac_address: pair["mac_address"]
                    .as_str()
                    .unwrap_or(&p.mac_address)
                    .to_string(),
            })
        })
        .collect()
}

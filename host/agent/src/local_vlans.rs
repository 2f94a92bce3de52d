//! Host-local VLANs: on the integration bridge each network gets a tag of its own on this host
//! (Neutron's OVS agent `local_vlan_map`). Kept in a file so that a restarted agent gives every
//! network the tag its ports already carry, and working instances keep working.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;

/// Tags 1..=4094 (0 is untagged, 4095 OVS's dead VLAN).
const TAGS: std::ops::RangeInclusive<u16> = 1..=4094;

#[derive(Debug)]
pub struct LocalVlans {
    path: PathBuf,
    by_network: BTreeMap<String, u16>,
}

impl LocalVlans {
    pub fn open(path: PathBuf) -> anyhow::Result<LocalVlans> {
        let by_network = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{}: not a local VLAN map", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(LocalVlans { path, by_network })
    }

    /// The network's tag, allocating the lowest free one the first time.
    pub fn get_or_allocate(&mut self, network_id: &str) -> anyhow::Result<u16> {
        if let Some(tag) = self.by_network.get(network_id) {
            return Ok(*tag);
        }
        let used: std::collections::BTreeSet<u16> = self.by_network.values().copied().collect();
        let tag = TAGS
            .clone()
            .find(|t| !used.contains(t))
            .context("every local VLAN of this host is in use")?;
        self.by_network.insert(network_id.into(), tag);
        self.save()?;
        Ok(tag)
    }

    pub fn release(&mut self, network_id: &str) -> anyhow::Result<()> {
        if self.by_network.remove(network_id).is_some() {
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> anyhow::Result<()> {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.by_network)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_tag_survives_a_restart_and_is_reused_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("local-vlans.json");
        let mut vlans = LocalVlans::open(path.clone()).unwrap();
        assert_eq!(vlans.get_or_allocate("a").unwrap(), 1);
        assert_eq!(vlans.get_or_allocate("b").unwrap(), 2);
        assert_eq!(vlans.get_or_allocate("a").unwrap(), 1);
        let mut reopened = LocalVlans::open(path.clone()).unwrap();
        assert_eq!(reopened.get_or_allocate("b").unwrap(), 2);
        reopened.release("a").unwrap();
        assert_eq!(reopened.get_or_allocate("c").unwrap(), 1);
        std::fs::write(&path, "nonsense").unwrap();
        assert!(LocalVlans::open(path).is_err());
    }
}

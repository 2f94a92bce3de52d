//! The netlink connections of one plan: the host's, and one per namespace the plan touches,
//! opened on first use.

use std::collections::HashMap;

use anyhow::Result;

use super::netlink::Netlink;

pub struct Connections {
    host: Netlink,
    namespaces: HashMap<String, Netlink>,
}

impl Connections {
    pub fn new() -> Result<Connections> {
        Ok(Connections {
            host: Netlink::host()?,
            namespaces: HashMap::new(),
        })
    }

    pub fn host(&self) -> Netlink {
        self.host.clone()
    }

    /// The connection in `namespace` (the host's for `None`).
    pub async fn get(&mut self, namespace: Option<&str>) -> Result<Netlink> {
        let Some(name) = namespace else {
            return Ok(self.host.clone());
        };
        if let Some(nl) = self.namespaces.get(name) {
            return Ok(nl.clone());
        }
        let nl = Netlink::in_namespace(name).await?;
        self.namespaces.insert(name.to_string(), nl.clone());
        Ok(nl)
    }

    /// Drops the connection of a namespace that was removed or made anew: it would still act
    /// in the old one.
    pub fn forget(&mut self, namespace: &str) {
        self.namespaces.remove(namespace);
    }
}

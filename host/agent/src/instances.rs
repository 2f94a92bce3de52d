//! Instances' DHCP clients: once every NIC of an instance is plugged, a real DHCP client runs
//! in its namespace for each NIC, and the leases (or the failure) are reported to the server,
//! which makes the server ACTIVE when they match the ports' addresses.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::client::ServerClient;
use super::protocol::{HostInstance, InstanceStatus, InstanceStatusReport, NicLease};
use crate::dhcp::client::DhcpClient;

pub struct Leases {
    client: ServerClient,
    dhcp_client: DhcpClient,
    timeout: Duration,
    running: HashMap<String, JoinHandle<()>>,
}

impl Leases {
    pub fn new(client: ServerClient, dhcp_client: DhcpClient, timeout: Duration) -> Leases {
        Leases {
            client,
            dhcp_client,
            timeout,
            running: HashMap::new(),
        }
    }

    pub fn started(&self, instance_id: &str) -> bool {
        self.running.contains_key(instance_id)
    }

    /// Leases every NIC of `instance` in the background and reports the outcome.
    pub fn start(&mut self, instance: HostInstance) {
        let client = self.client.clone();
        let dhcp_client = self.dhcp_client.clone();
        let timeout = self.timeout;
        let id = instance.id.clone();
        let task = tokio::spawn(async move {
            let report = match lease_all(&dhcp_client, &instance, timeout).await {
                Ok(nics) => InstanceStatus {
                    id: instance.id.clone(),
                    nics,
                    error: None,
                },
                Err(error) => InstanceStatus {
                    id: instance.id.clone(),
                    nics: vec![],
                    error: Some(error),
                },
            };
            let report = InstanceStatusReport {
                instances: vec![report],
            };
            if let Err(e) = client.instance_status(&report).await {
                tracing::error!("reporting instance {}: {e:#}", instance.id);
            }
        });
        self.running.insert(id, task);
    }

    /// Reports an instance that could not even be started (its namespace failed).
    pub async fn fail(&self, instance: &HostInstance, error: &str) {
        let report = InstanceStatusReport {
            instances: vec![InstanceStatus {
                id: instance.id.clone(),
                nics: vec![],
                error: Some(error.to_string()),
            }],
        };
        if let Err(e) = self.client.instance_status(&report).await {
            tracing::error!("reporting instance {}: {e:#}", instance.id);
        }
    }

    pub fn cancel(&mut self, instance_id: &str) {
        if let Some(task) = self.running.remove(instance_id) {
            task.abort();
        }
    }
}

async fn lease_all(
    dhcp_client: &DhcpClient,
    instance: &HostInstance,
    timeout: Duration,
) -> Result<Vec<NicLease>, String> {
    let mut nics = Vec::new();
    for nic in &instance.nics {
        let (namespace, interface) = (instance.namespace.clone(), nic.interface_name.clone());
        let dhcp_client = dhcp_client.clone();
        let leased = tokio::task::spawn_blocking(move || {
            // A NIC that holds an address already (an agent restart) keeps it: running the
            // client again would take the address down and up under a working instance.
            if let Some(ip) = held_ipv4(&namespace, &interface) {
                return Ok(ip);
            }
            dhcp_client
                .lease(&namespace, &interface, timeout)
                .map(|lease| lease.ip.to_string())
                .map_err(|e| format!("{e:#}"))
        })
        .await
        .map_err(|e| format!("DHCP client task: {e}"))?
        .map_err(|e| format!("no DHCP lease on {}: {e}", nic.interface_name))?;
        nics.push(NicLease {
            port_id: nic.port_id.clone(),
            leased_ip: Some(leased),
        });
    }
    Ok(nics)
}

/// The IPv4 address `interface` holds in `namespace`, if any (`ip -j addr`).
fn held_ipv4(namespace: &str, interface: &str) -> Option<String> {
    let out = std::process::Command::new("ip")
        .args([
            "-n", namespace, "-j", "-4", "addr", "show", "dev", interface,
        ])
        .output()
        .ok()?;
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    links
        .as_array()?
        .iter()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .find_map(|a| a["local"].as_str().map(str::to_string))
}

//! The sweep after a full resync: devices, OVS ports and namespaces that we made (recognised
//! by our naming rules) and that no longer belong to anything on this host are removed.
//! Anything not named by our rules is never touched.

use std::collections::BTreeSet;

use neutrino_model::{LinkRef, Op, OvsPortRef};

use super::executor::Executor;

/// What must stay.
pub struct Keep {
    /// Ports plugged on this host.
    pub ports: BTreeSet<String>,
    /// Networks with a port plugged on this host.
    pub networks: BTreeSet<String>,
    /// Instance, DHCP and router (`qrouter-`) namespaces that belong here.
    pub namespaces: BTreeSet<String>,
    /// The OVS integration bridge, when an Open vSwitch driver is loaded.
    pub integration_bridge: Option<String>,
    /// The VXLAN devices the networks plugged here use.
    pub tunnels: BTreeSet<String>,
}

/// Per-port device prefixes (Neutron's `tap`, and os-vif's hybrid-plug `qbr`/`qvb`/`qvo`).
const PORT_PREFIXES: [&str; 4] = ["tap", "qbr", "qvb", "qvo"];

pub async fn sweep(executor: &Executor, keep: &Keep) -> anyhow::Result<()> {
    let mut plan = Vec::new();
    let links = executor.links(None).await?;
    let stale_bridges: BTreeSet<String> = links
        .iter()
        .filter_map(|l| {
            let id = l.name.strip_prefix("brq").filter(|id| is_short_id(id))?;
            (!keep.networks.iter().any(|n| n.starts_with(id))).then(|| l.name.clone())
        })
        .collect();
    for link in &links {
        let port_device = PORT_PREFIXES
            .iter()
            .find_map(|p| link.name.strip_prefix(p).filter(|id| is_short_id(id)));
        let stale = match port_device {
            Some(id) => !keep.ports.iter().any(|p| p.starts_with(id)),
            // A VXLAN device of a network bridge that goes.
            None => {
                link.name.starts_with("vxlan-")
                    && link
                        .controller
                        .as_ref()
                        .is_some_and(|c| stale_bridges.contains(c))
            }
        };
        if stale {
            plan.push(Op::RemoveLink(LinkRef {
                name: link.name.clone(),
                namespace: None,
            }));
        }
    }
    plan.extend(stale_bridges.iter().map(|name| {
        Op::RemoveLink(LinkRef {
            name: name.clone(),
            namespace: None,
        })
    }));
    if let Some(bridge) = &keep.integration_bridge {
        // No bridge yet (nothing plugged since OVS started) is nothing to sweep.
        if let Ok(ports) = executor.ovs_ports(bridge).await {
            for port in ports {
                let stale_port = port
                    .external_ids
                    .get("iface-id")
                    .is_some_and(|id| !keep.ports.contains(id));
                // A network's VXLAN device on the integration bridge (ovs-hybrid), left by an
                // agent that stopped before it tore the network down.
                let stale_tunnel = port.name.starts_with("vxlan-")
                    && !port.external_ids.contains_key("iface-id")
                    && !keep.tunnels.contains(&port.name);
                if stale_port || stale_tunnel {
                    plan.push(Op::RemoveOvsPort(OvsPortRef {
                        bridge: bridge.clone(),
                        name: port.name.clone(),
                    }));
                }
                if stale_tunnel {
                    plan.push(Op::RemoveLink(LinkRef {
                        name: port.name,
                        namespace: None,
                    }));
                }
            }
        }
    }
    for namespace in executor.namespaces().await? {
        if stale_namespace(&namespace, keep) {
            kill_processes_in(&namespace);
            plan.push(Op::RemoveNamespace(namespace));
        }
    }
    if !plan.is_empty() {
        tracing::info!("removing {} stale objects", plan.len());
        for op in &plan {
            tracing::info!("stale: {}", neutrino_runtime::plugins::render::op(op));
        }
    }
    // One at a time: a failure to remove one object must not keep the others.
    for op in plan {
        if let Err(e) = executor.apply(std::slice::from_ref(&op)).await {
            tracing::warn!("{e}");
        }
    }
    Ok(())
}

/// Namespace prefixes of ours: DHCP, instances, routers.
const NAMESPACE_PREFIXES: [&str; 3] = ["qdhcp-", "inst-", crate::l3::NAMESPACE_PREFIX];

/// A namespace of ours (by its prefix) that does not belong any more.
fn stale_namespace(namespace: &str, keep: &Keep) -> bool {
    NAMESPACE_PREFIXES.iter().any(|p| namespace.starts_with(p))
        && !keep.namespaces.contains(namespace)
}

/// `8 hex-2 hex`: the first 11 characters of a UUID, as device names carry them.
fn is_short_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 11
        && b[8] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 8 || c.is_ascii_hexdigit())
}

/// A stale DHCP namespace may still hold the dnsmasq of an agent that died.
fn kill_processes_in(namespace: &str) {
    let Ok(out) = std::process::Command::new("ip")
        .args(["netns", "pids", namespace])
        .output()
    else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if let Ok(pid) = pid.parse::<i32>() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_device_names_count() {
        assert!(is_short_id("3f1c2a9e-7b"));
        assert!(!is_short_id("3f1c2a9e7b4"));
        assert!(!is_short_id("vnet0"));
        assert!(!is_short_id("3f1c2a9e-7bx"));
    }

    #[test]
    fn router_namespaces_not_kept_are_stale() {
        let keep = Keep {
            ports: BTreeSet::new(),
            networks: BTreeSet::new(),
            namespaces: BTreeSet::from(["qrouter-r1".to_string(), "qdhcp-n1".to_string()]),
            integration_bridge: None,
            tunnels: BTreeSet::new(),
        };
        assert!(!stale_namespace("qrouter-r1", &keep));
        assert!(stale_namespace("qrouter-r2", &keep));
        assert!(stale_namespace("qdhcp-n2", &keep));
        assert!(!stale_namespace("qdhcp-n1", &keep));
        assert!(!stale_namespace("someone-elses", &keep), "not ours");
    }
}

//! The agent's state machine: it takes the server's [`HostChanges`] and makes the host match —
//! namespaces for instances, DHCP and routers, ports plugged by their drivers, dnsmasq for the
//! networks whose DHCP this host serves, routers' addresses, routes and NAT, DHCP clients in
//! instances — and says what became of each port, instance and floating IP.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use neutrino_model::{AddressSpec, Op};

use super::client::ServerClient;
use super::firewall::{Firewall, FirewallPort};
use super::forwarding::Forwarding;
use super::instances::Leases;
use super::protocol::{
    DhcpNetwork, FloatingIpStatusReport, HostChanges, HostInstance, HostPort, HostRouter,
    PortStatus, PortStatusReport, dhcp_interface, dhcp_namespace,
};
use super::wiring::Wiring;
use super::{drift, stale};
use crate::dhcp::DhcpManager;
use crate::dhcp::client::DhcpClient;
use crate::l3::Routers;

/// How long listing links and OVS ports for a drift check may take.
const DRIFT_LISTING_TIMEOUT: Duration = Duration::from_secs(20);

/// Owners whose ports have no DHCP host entry (Neutron's DHCP agent skips them).
const NO_DHCP_ENTRY: [&str; 4] = [
    "network:dhcp",
    "network:router_ha_interface",
    "network:floatingip",
    "network:distributed",
];

pub struct Engine {
    client: ServerClient,
    wiring: Wiring,
    /// Blocking (files, processes): used from blocking threads.
    dhcp: Option<Arc<Mutex<DhcpManager>>>,
    leases: Leases,
    /// Swept for stale OVS ports, when an Open vSwitch driver is loaded.
    integration_bridge: Option<String>,
    /// Every port the feed told us about (bound here, or on a network whose DHCP we serve).
    ports: HashMap<String, HostPort>,
    dhcp_networks: HashMap<String, DhcpNetwork>,
    instances: HashMap<String, HostInstance>,
    /// Plugged ports whose wiring drifted and could not be applied again (reported ERROR
    /// once; tried again at every check).
    broken: BTreeSet<String>,
    /// The peers of this host's networks and the forwarding entries they need.
    forwarding: Forwarding,
    /// Security groups on the ports' bridge ports; None with `firewall_driver = "noop"`.
    firewall: Option<Firewall>,
    /// The routers this host serves, as last told; None when it serves none (`l3 = false`).
    routers: Option<(Routers, HashMap<String, HostRouter>)>,
}

impl Engine {
    pub fn new(
        client: ServerClient,
        wiring: Wiring,
        dhcp: Option<DhcpManager>,
        dhcp_client: DhcpClient,
        lease_timeout: Duration,
        integration_bridge: Option<String>,
        firewall: Option<Firewall>,
    ) -> Engine {
        let leases = Leases::new(client.clone(), dhcp_client, lease_timeout);
        Engine {
            client,
            wiring,
            dhcp: dhcp.map(|d| Arc::new(Mutex::new(d))),
            leases,
            integration_bridge,
            ports: HashMap::new(),
            dhcp_networks: HashMap::new(),
            instances: HashMap::new(),
            broken: BTreeSet::new(),
            forwarding: Forwarding::default(),
            firewall,
            routers: None,
        }
    }

    /// Serves the routers the feed gives this host (the L3 agent).
    pub fn with_routers(mut self) -> Engine {
        self.routers = Some((Routers::new(self.wiring.executor().clone()), HashMap::new()));
        self
    }

    /// Applies one answer of the change feed. Errors of single objects are reported on them
    /// (port ERROR, instance fault) and logged; they never stop the agent.
    pub async fn apply(&mut self, changes: HostChanges) {
        let mut gone_ports: BTreeSet<String> = BTreeSet::new();
        let mut gone_instances: BTreeSet<String> = BTreeSet::new();
        let mut gone_networks: BTreeSet<String> = BTreeSet::new();
        let mut gone_routers: BTreeSet<String> = BTreeSet::new();
        if changes.full {
            let listed: BTreeSet<&str> = changes.routers.iter().map(|r| r.id.as_str()).collect();
            if let Some((_, known)) = &self.routers {
                gone_routers.extend(
                    known
                        .keys()
                        .filter(|id| !listed.contains(id.as_str()))
                        .cloned(),
                );
            }
            // What is not listed does not belong here any more.
            let listed: BTreeSet<&str> = changes
                .ports
                .iter()
                .map(|p| p.id.as_str())
                .chain(
                    changes
                        .dhcp_networks
                        .iter()
                        .flat_map(|n| n.network.iter().flat_map(|n| &n.ports))
                        .map(|p| p.id.as_str()),
                )
                .collect();
            gone_ports.extend(
                self.ports
                    .keys()
                    .chain(self.wiring.plugged().keys())
                    .filter(|id| !listed.contains(id.as_str()))
                    .cloned(),
            );
            let listed: BTreeSet<&str> = changes.instances.iter().map(|i| i.id.as_str()).collect();
            gone_instances.extend(
                self.instances
                    .keys()
                    .filter(|id| !listed.contains(id.as_str()))
                    .cloned(),
            );
            let listed: BTreeSet<&str> = changes
                .dhcp_networks
                .iter()
                .map(|n| n.id.as_str())
                .collect();
            gone_networks.extend(
                self.dhcp_networks
                    .keys()
                    .filter(|id| !listed.contains(id.as_str()))
                    .cloned(),
            );
        }

        // Namespaces first: ports are plugged into them.
        for change in changes.instances {
            match change.instance {
                Some(instance) => {
                    if let Err(e) = self.ensure_namespace(&instance.namespace).await {
                        self.leases.fail(&instance, &e).await;
                        continue;
                    }
                    self.instances.insert(instance.id.clone(), instance);
                }
                None => {
                    gone_instances.insert(change.id);
                }
            }
        }
        let mut changed_routers: BTreeSet<String> = BTreeSet::new();
        for change in changes.routers {
            match change.router {
                Some(router) => {
                    if let Err(e) = self.ensure_namespace(&router.namespace).await {
                        tracing::error!("router {}: {e}", change.id);
                        continue;
                    }
                    if let Some((_, known)) = &mut self.routers {
                        changed_routers.insert(change.id.clone());
                        known.insert(change.id, router);
                    }
                }
                None => {
                    gone_routers.insert(change.id);
                }
            }
        }
        let mut changed_networks = Vec::new();
        for change in changes.dhcp_networks {
            match change.network {
                Some(network) => {
                    if let Err(e) = self.ensure_namespace(&dhcp_namespace(&change.id)).await {
                        tracing::error!("DHCP for network {}: {e}", change.id);
                        continue;
                    }
                    for port in &network.ports {
                        self.ports.insert(port.id.clone(), port.clone());
                    }
                    changed_networks.push(change.id.clone());
                    self.dhcp_networks.insert(change.id, network);
                }
                None => {
                    gone_networks.insert(change.id);
                }
            }
        }

        // Ports: unplug what went or changed, plug what is new, and keep DHCP entries current.
        let changed_ports: Vec<String> = changes.ports.iter().map(|c| c.id.clone()).collect();
        let mut dhcp_updates: Vec<(String, HostPort)> = Vec::new();
        let mut dhcp_removals: Vec<(String, String)> = Vec::new();
        let mut to_plug = Vec::new();
        let mut to_unplug = Vec::new();
        for change in changes.ports {
            let Some(port) = change.port else {
                gone_ports.insert(change.id);
                continue;
            };
            if let Some(old) = self.ports.get(&port.id)
                && old.network_id != port.network_id
                && self.dhcp_networks.contains_key(&old.network_id)
            {
                dhcp_removals.push((old.network_id.clone(), port.id.clone()));
            }
            if self.dhcp_networks.contains_key(&port.network_id)
                && !changed_networks.contains(&port.network_id)
            {
                dhcp_updates.push((port.network_id.clone(), port.clone()));
            }
            let pluggable = port
                .binding
                .as_ref()
                .is_some_and(|b| b.attachment.is_some());
            if pluggable {
                if !self.wiring.is_current(&port) || port.status != "ACTIVE" {
                    to_plug.push(port.clone());
                }
            } else if self.wiring.plugged().contains_key(&port.id) {
                to_unplug.push(port.id.clone());
            }
            self.ports.insert(port.id.clone(), port);
        }
        for id in &gone_ports {
            if let Some(old) = self.ports.remove(id)
                && self.dhcp_networks.contains_key(&old.network_id)
            {
                dhcp_removals.push((old.network_id.clone(), id.clone()));
            }
            if let Err(e) = self.wiring.unplug(id).await {
                tracing::error!("unplugging port {id}: {e}");
            }
        }
        let mut statuses = Vec::new();
        for id in &to_unplug {
            match self.wiring.unplug(id).await {
                Ok(()) => statuses.push(status(id, "DOWN", None)),
                Err(e) => tracing::error!("unplugging port {id}: {e}"),
            }
        }
        self.report_ports(
            to_plug
                .iter()
                .filter(|p| p.status != "BUILD")
                .map(|p| status(&p.id, "BUILD", None))
                .collect(),
        )
        .await;
        for port in &to_plug {
            // The port's id and revision name the server's "port binding written" line, which
            // carries the id of the request that bound it; the drivers' plans run in this span.
            let span = tracing::info_span!(
                "plug",
                port = %port.id,
                revision = port.revision_number
            );
            tracing::info!(parent: &span, "plugging the port");
            // An answer may name a port whose attachment (read from its instance's row) is
            // newer than the answer's instances: its namespace is made here, not left missing
            // until the instance's own entry arrives.
            let namespace = port.binding.as_ref().and_then(|b| b.attachment.as_ref());
            let made = match namespace {
                Some(a) => self.ensure_namespace(&a.namespace).await,
                None => Ok(()),
            };
            let plugged = match made {
                Ok(()) => tracing::Instrument::instrument(self.wiring.plug(port), span).await,
                Err(e) => Err(e),
            };
            match plugged {
                Ok(()) => {
                    self.broken.remove(&port.id);
                    statuses.push(status(&port.id, "ACTIVE", None));
                    // A DHCP port is bound after its network was given to this host, so it
                    // may arrive (and be plugged) after the network: dnsmasq starts now.
                    if let Some(network) = self.dhcp_networks.get(&port.network_id)
                        && network.dhcp_port_id == port.id
                        && !changed_networks.contains(&port.network_id)
                    {
                        changed_networks.push(port.network_id.clone());
                    }
                }
                Err(e) => {
                    tracing::error!("plugging port {}: {e}", port.id);
                    if self.wiring.plugged().contains_key(&port.id) {
                        self.broken.insert(port.id.clone());
                    }
                    statuses.push(status(&port.id, "ERROR", Some(e)));
                }
            }
        }
        // Filters before ACTIVE: a port is reported up once its security groups hold.
        let unplugged: Vec<String> = gone_ports.iter().chain(&to_unplug).cloned().collect();
        if let Err(e) = self
            .apply_filters(
                &changes.remote_groups,
                &changed_ports,
                &unplugged,
                changes.full,
            )
            .await
        {
            tracing::error!("security groups: {e:#}");
            for s in statuses.iter_mut().filter(|s| s.status == "ACTIVE") {
                s.status = "ERROR".into();
                s.error = Some(format!("security groups: {e:#}"));
            }
        }
        self.report_ports(statuses).await;

        // Routers: those that changed, and those whose ports were just plugged (a router is
        // made with the devices it has; each device that arrives later makes it again).
        let plugged_now: BTreeSet<&str> = to_plug.iter().map(|p| p.id.as_str()).collect();
        if let Some((_, known)) = &self.routers {
            changed_routers.extend(
                known
                    .values()
                    .filter(|r| router_ports(r).any(|p| plugged_now.contains(p)))
                    .map(|r| r.id.clone()),
            );
        }
        self.remove_routers(&gone_routers).await;
        self.apply_routers(&changed_routers).await;

        // Forwarding entries: peers changed, or a tunnel device was made or removed.
        self.forwarding.update(&changes.networks, changes.full);
        if changes.full || !changes.networks.is_empty() || !to_plug.is_empty() {
            self.sync_forwarding().await;
        }

        // DHCP: whole networks that changed, then single entries.
        for network_id in &gone_networks {
            self.dhcp_networks.remove(network_id);
            self.disable_dhcp(network_id).await;
        }
        for network_id in &changed_networks {
            self.configure_dhcp(network_id).await;
        }
        self.update_dhcp_entries(dhcp_updates, dhcp_removals).await;

        // Instances: gone ones lose their namespace; new ones get their DHCP clients once
        // every NIC is plugged.
        for id in &gone_instances {
            if let Some(instance) = self.instances.remove(id) {
                self.leases.cancel(id);
                self.remove_namespace(&instance.namespace).await;
            }
        }
        for instance in self.instances.values() {
            let plugged = instance
                .nics
                .iter()
                .all(|n| self.wiring.plugged().contains_key(&n.port_id));
            if plugged && !self.leases.started(&instance.id) {
                self.leases.start(instance.clone());
            }
        }
        if changes.full {
            self.sweep().await;
            self.check_wiring(true).await;
        }
    }

    /// Compares what the plans of the plugged ports made with the kernel and Open vSwitch
    /// now (with `namespaces`, the links inside namespaces too: one netlink connection each),
    /// and heals what drifted: such a port is reported DOWN, its plans are applied again, and
    /// it is reported ACTIVE once they applied (ERROR, once, while they fail; tried again at
    /// every check). A repaired DHCP port gets its addresses and dnsmasq again; an instance
    /// whose NIC was made anew leases again.
    pub async fn check_wiring(&mut self, namespaces: bool) {
        let ids: Vec<String> = self.wiring.plugged().keys().cloned().collect();
        tracing::debug!("comparing {} plugged ports with the kernel", ids.len());
        if ids.is_empty() {
            return;
        }
        let ops = ids.iter().flat_map(|id| self.wiring.applied(id));
        let listing = drift::Observed::list(self.wiring.executor(), ops, namespaces);
        let observed = match tokio::time::timeout(DRIFT_LISTING_TIMEOUT, listing).await {
            Ok(Ok(observed)) => observed,
            Err(_) => {
                tracing::error!("listing devices took over {DRIFT_LISTING_TIMEOUT:?}: skipped");
                return;
            }
            Ok(Err(e)) => {
                tracing::error!("listing devices to compare with the plans: {e:#}");
                return;
            }
        };
        let drifted: Vec<(String, String)> = ids
            .into_iter()
            .filter_map(|id| {
                let plan: Vec<Op> = self.wiring.applied(&id).cloned().collect();
                observed.missing(&plan).map(|why| (id, why))
            })
            .collect();
        if drifted.is_empty() {
            return;
        }
        let mut down = Vec::new();
        for (id, why) in &drifted {
            tracing::warn!("port {id}: its wiring drifted ({why}): applying its plans again");
            if !self.broken.contains(id) {
                down.push(status(id, "DOWN", Some(format!("wiring drifted: {why}"))));
            }
        }
        self.report_ports(down).await;
        let mut statuses = Vec::new();
        let mut repaired = Vec::new();
        for (id, _) in &drifted {
            match self.wiring.reapply(id).await {
                Ok(()) => {
                    tracing::info!("port {id}: wiring repaired");
                    self.broken.remove(id);
                    statuses.push(status(id, "ACTIVE", None));
                    repaired.push(id.clone());
                }
                Err(e) => {
                    tracing::error!("port {id}: repairing its wiring: {e}");
                    if self.broken.insert(id.clone()) {
                        statuses.push(status(id, "ERROR", Some(e)));
                    }
                }
            }
        }
        // A DHCP port made anew lost its addresses, and dnsmasq its socket on it.
        let networks: Vec<String> = self
            .dhcp_networks
            .iter()
            .filter(|(_, n)| repaired.contains(&n.dhcp_port_id))
            .map(|(id, _)| id.clone())
            .collect();
        for network_id in networks {
            self.configure_dhcp(&network_id).await;
            if let Some(dhcp) = self.dhcp.clone() {
                let id = network_id.clone();
                let done =
                    tokio::task::spawn_blocking(move || dhcp.lock().unwrap().restart(&id)).await;
                if let Ok(Err(e)) = done {
                    tracing::error!("network {network_id}: restarting dnsmasq: {e:#}");
                }
            }
        }
        self.report_ports(statuses).await;
        // A router device made anew lost its addresses (and the routes through it).
        let relaid: BTreeSet<String> =
            self.routers
                .as_ref()
                .map_or_else(BTreeSet::new, |(_, known)| {
                    known
                        .values()
                        .filter(|r| router_ports(r).any(|p| repaired.iter().any(|id| id == p)))
                        .map(|r| r.id.clone())
                        .collect()
                });
        self.apply_routers(&relaid).await;
        if !repaired.is_empty() {
            // A tunnel device made anew has no forwarding entries.
            self.sync_forwarding().await;
        }
        // An instance NIC made anew holds no address: its DHCP client runs again (one that
        // kept its address keeps it).
        let relet: Vec<HostInstance> = self
            .instances
            .values()
            .filter(|i| i.nics.iter().any(|n| repaired.contains(&n.port_id)))
            .cloned()
            .collect();
        for instance in relet {
            self.leases.cancel(&instance.id);
            self.leases.start(instance);
        }
    }

    async fn sync_forwarding(&self) {
        let devices = self.wiring.tunnel_devices();
        self.forwarding.sync(self.wiring.executor(), &devices).await;
    }

    /// Keeps every dnsmasq running (restarting those that died).
    pub async fn supervise(&self) {
        let Some(dhcp) = self.dhcp.clone() else {
            return;
        };
        let restarted = tokio::task::spawn_blocking(move || dhcp.lock().unwrap().supervise())
            .await
            .unwrap_or_default();
        for network in restarted {
            tracing::warn!("dnsmasq of network {network} had died; restarted");
        }
    }

    /// Removes devices and namespaces of ours (by our naming prefixes) that no longer belong.
    async fn sweep(&mut self) {
        let mut namespaces: BTreeSet<String> = self
            .instances
            .values()
            .map(|i| i.namespace.clone())
            .collect();
        namespaces.extend(self.dhcp_networks.keys().map(|n| dhcp_namespace(n)));
        if let Some((_, known)) = &self.routers {
            namespaces.extend(known.values().map(|r| r.namespace.clone()));
        }
        let keep = stale::Keep {
            ports: self.wiring.plugged().keys().cloned().collect(),
            networks: self
                .wiring
                .plugged()
                .values()
                .map(|p| p.network_id.clone())
                .collect(),
            namespaces,
            integration_bridge: self.integration_bridge.clone(),
            tunnels: self
                .wiring
                .tunnel_devices()
                .into_iter()
                .map(|(_, spec)| spec.name)
                .collect(),
        };
        if let Err(e) = stale::sweep(self.wiring.executor(), &keep).await {
            tracing::error!("sweeping stale devices: {e:#}");
        }
    }

    /// Brings the firewall up to date for the ports the answer named (or, with `full`, every
    /// plugged port) and the remote groups it carried.
    async fn apply_filters(
        &mut self,
        remote_groups: &[neutrino_proto::RemoteGroupChange],
        changed: &[String],
        unplugged: &[String],
        full: bool,
    ) -> anyhow::Result<()> {
        let Some(firewall) = &mut self.firewall else {
            return Ok(());
        };
        firewall.groups_changed(remote_groups, full);
        let named: Vec<&String> = if full {
            self.wiring.plugged().keys().collect()
        } else {
            changed.iter().collect()
        };
        let mut ports = Vec::new();
        let mut removed = unplugged.to_vec();
        for id in named {
            let (Some(port), Some((device, bridge))) =
                (self.ports.get(id), self.wiring.filter_point(id))
            else {
                removed.push(id.clone());
                continue;
            };
            ports.push(FirewallPort::new(port, device, bridge));
        }
        if !full && ports.is_empty() && removed.is_empty() && remote_groups.is_empty() {
            return Ok(());
        }
        firewall.apply(ports, &removed, full).await
    }

    async fn ensure_namespace(&self, name: &str) -> Result<(), String> {
        self.wiring
            .executor()
            .apply(&[Op::EnsureNamespace(name.to_string())])
            .await
            .map_err(|e| e.to_string())
    }

    async fn remove_namespace(&self, name: &str) {
        if let Err(e) = self
            .wiring
            .executor()
            .apply(&[Op::RemoveNamespace(name.to_string())])
            .await
        {
            tracing::error!("removing namespace {name}: {e}");
        }
    }

    /// The DHCP port's addresses in `qdhcp-<network>`, then dnsmasq for the whole network.
    async fn configure_dhcp(&mut self, network_id: &str) {
        let Some(network) = self.dhcp_networks.get(network_id).cloned() else {
            return;
        };
        let Some(dhcp) = self.dhcp.clone() else {
            return;
        };
        let Some(port) = self.ports.get(&network.dhcp_port_id).cloned() else {
            tracing::warn!("network {network_id}: its DHCP port has not arrived yet");
            return;
        };
        if !self.wiring.plugged().contains_key(&port.id) {
            // The network's own port list may carry a fresher binding than the port changes
            // of the same answer: plug it from there.
            let pluggable = port
                .binding
                .as_ref()
                .is_some_and(|b| b.attachment.is_some());
            if !pluggable {
                tracing::warn!(
                    "network {network_id}: its DHCP port {} is not bound here yet",
                    port.id
                );
                return;
            }
            if let Err(e) = self.wiring.plug(&port).await {
                tracing::error!("network {network_id}: plugging its DHCP port: {e}");
                self.report_ports(vec![status(&port.id, "ERROR", Some(e))])
                    .await;
                return;
            }
            self.report_ports(vec![status(&port.id, "ACTIVE", None)])
                .await;
        }
        let interface = dhcp_interface(&port.id);
        let namespace = dhcp_namespace(network_id);
        let addresses: Vec<Op> = port
            .fixed_ips
            .iter()
            .filter_map(|ip| {
                let subnet = network.subnets.iter().find(|s| s.id == ip.subnet_id)?;
                let prefix = subnet.cidr.split('/').nth(1)?;
                Some(Op::EnsureAddress(AddressSpec {
                    link: interface.clone(),
                    namespace: Some(namespace.clone()),
                    cidr: format!("{}/{prefix}", ip.ip_address),
                }))
            })
            .collect();
        if let Err(e) = self.wiring.executor().apply(&addresses).await {
            tracing::error!("network {network_id}: DHCP port addresses: {e}");
            return;
        }
        let done = tokio::task::spawn_blocking(move || {
            dhcp.lock().unwrap().configure(&network, &interface)
        })
        .await;
        match done {
            Ok(Ok(outcome)) => {
                tracing::info!("network {network_id}: dnsmasq {:?}", outcome.action)
            }
            Ok(Err(e)) => tracing::error!("network {network_id}: dnsmasq: {e:#}"),
            Err(e) => tracing::error!("network {network_id}: dnsmasq: {e}"),
        }
    }

    async fn disable_dhcp(&mut self, network_id: &str) {
        if let Some(dhcp) = self.dhcp.clone() {
            let id = network_id.to_string();
            match tokio::task::spawn_blocking(move || dhcp.lock().unwrap().disable(&id)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!("network {network_id}: stopping dnsmasq: {e:#}"),
                Err(e) => tracing::error!("network {network_id}: stopping dnsmasq: {e}"),
            }
        }
        self.remove_namespace(&dhcp_namespace(network_id)).await;
    }

    /// One host entry per changed port; the other ports' entries are not touched.
    async fn update_dhcp_entries(
        &mut self,
        updates: Vec<(String, HostPort)>,
        removals: Vec<(String, String)>,
    ) {
        let Some(dhcp) = self.dhcp.clone() else {
            return;
        };
        let updates: Vec<_> = updates
            .into_iter()
            .filter(|(_, p)| !NO_DHCP_ENTRY.contains(&p.device_owner.as_str()))
            .collect();
        if updates.is_empty() && removals.is_empty() {
            return;
        }
        let done = tokio::task::spawn_blocking(move || {
            let mut dhcp = dhcp.lock().unwrap();
            for (network, port_id) in removals {
                if let Err(e) = dhcp.remove_port(&network, &port_id) {
                    tracing::error!("network {network}: DHCP entry of {port_id}: {e:#}");
                }
            }
            for (network, port) in updates {
                if let Err(e) = dhcp.upsert_port(&network, &port) {
                    tracing::error!("network {network}: DHCP entry of {}: {e:#}", port.id);
                }
            }
        })
        .await;
        if let Err(e) = done {
            tracing::error!("DHCP entries: {e}");
        }
    }

    /// Makes each router's namespace match it, with the devices plugged so far, and reports
    /// the floating IPs whose status changed.
    async fn apply_routers(&mut self, ids: &BTreeSet<String>) {
        let plugged = self.wiring.plugged();
        let Some((routers, known)) = &mut self.routers else {
            return;
        };
        let mut statuses = Vec::new();
        for id in ids {
            let Some(router) = known.get(id) else {
                continue;
            };
            let router = with_plugged_devices(router, |port| plugged.contains_key(port));
            let applied = routers.apply(&router).await;
            statuses.extend(applied.statuses);
        }
        if statuses.is_empty() {
            return;
        }
        let report = FloatingIpStatusReport {
            floating_ips: statuses,
        };
        if let Err(e) = self.client.floating_ip_status(&report).await {
            tracing::error!("reporting floating IP status: {e:#}");
        }
    }

    /// Removes the namespaces of routers this host no longer serves (their ports are
    /// unplugged already: they left the host's feed with the router).
    async fn remove_routers(&mut self, ids: &BTreeSet<String>) {
        let Some((routers, known)) = &mut self.routers else {
            return;
        };
        for id in ids {
            known.remove(id);
            if let Err(e) = routers.remove(id).await {
                tracing::error!("removing router {id}: {e:#}");
            }
        }
    }

    async fn report_ports(&self, ports: Vec<PortStatus>) {
        if ports.is_empty() {
            return;
        }
        if let Err(e) = self.client.port_status(&PortStatusReport { ports }).await {
            tracing::error!("reporting port status: {e:#}");
        }
    }
}

/// The ids of a router's ports (interfaces and gateway).
fn router_ports(router: &HostRouter) -> impl Iterator<Item = &str> {
    router
        .interfaces
        .iter()
        .chain(router.gateway.as_ref().map(|g| &g.device))
        .map(|d| d.port_id.as_str())
}

/// The router with only the devices whose ports are plugged (its floating IPs go with its
/// gateway): what can be made of it now.
fn with_plugged_devices(router: &HostRouter, plugged: impl Fn(&str) -> bool) -> HostRouter {
    let mut router = router.clone();
    router.interfaces.retain(|d| plugged(&d.port_id));
    if router
        .gateway
        .as_ref()
        .is_some_and(|g| !plugged(&g.device.port_id))
    {
        router.gateway = None;
        router.floating_ips.clear();
    }
    router
}

fn status(id: &str, status: &str, error: Option<String>) -> PortStatus {
    PortStatus {
        id: id.to_string(),
        status: status.to_string(),
        error,
    }
}

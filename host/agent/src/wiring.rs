//! L2 wiring on this host: a bound port's driver computes the plan (`setup-network` once per
//! network and driver, `plug-port` per port), the executor applies it. What was plugged is kept,
//! so that an unplug is computed from what was really done, and a network is torn down when its
//! last port on the host goes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use neutrino_model as model;
use neutrino_model::{Op, Plan};

use super::executor::Executor;
use super::local_vlans::LocalVlans;
use super::protocol::{HostBinding, HostPort};
use neutrino_model::json_pairs;
use neutrino_runtime::plugins::Driver;
use neutrino_runtime::plugins::registry::Registry;

pub struct Wiring {
    host: String,
    executor: Executor,
    drivers: Arc<Registry>,
    /// This agent as each driver's agent type (what plug and setup contexts carry).
    agents: HashMap<String, model::Agent>,
    local_vlans: LocalVlans,
    /// Plugged ports as they were plugged.
    plugged: HashMap<String, HostPort>,
    /// (network id, driver) -> ports plugged on it.
    networks: HashMap<(String, String), BTreeSet<String>>,
    /// The plans applied, to compare with the kernel and to apply again after drift:
    /// (network id, driver) -> its setup plan, port id -> its plug plan.
    network_plans: HashMap<(String, String), Plan>,
    port_plans: HashMap<String, Plan>,
}

impl Wiring {
    pub fn new(
        host: String,
        executor: Executor,
        drivers: Arc<Registry>,
        agents: HashMap<String, model::Agent>,
        local_vlans: LocalVlans,
    ) -> Wiring {
        Wiring {
            host,
            executor,
            drivers,
            agents,
            local_vlans,
            plugged: HashMap::new(),
            networks: HashMap::new(),
            network_plans: HashMap::new(),
            port_plans: HashMap::new(),
        }
    }

    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    pub fn plugged(&self) -> &HashMap<String, HostPort> {
        &self.plugged
    }

    /// True when `port` is plugged exactly as it now asks to be.
    pub fn is_current(&self, port: &HostPort) -> bool {
        self.plugged
            .get(&port.id)
            .is_some_and(|p| same_wiring(p, port))
    }

    /// Where the port's traffic crosses a Linux bridge, as its plug plan made it: the device
    /// facing its attachment (the veth whose peer is in the attachment's namespace) and the
    /// bridge the plan attached that device to. None when the plan puts no such device on a
    /// Linux bridge (a driver wiring straight into Open vSwitch): such a port cannot be
    /// filtered here. Read from the plan, so drivers of every contract version are covered.
    pub fn filter_point(&self, port_id: &str) -> Option<(String, String)> {
        let namespace = self
            .plugged
            .get(port_id)?
            .binding
            .as_ref()?
            .attachment
            .as_ref()?
            .namespace
            .clone();
        let plan = self.port_plans.get(port_id)?;
        let device = plan.iter().find_map(|op| match op {
            Op::EnsureVeth(v) if v.peer_namespace.as_deref() == Some(namespace.as_str()) => {
                Some(v.name.clone())
            }
            _ => None,
        })?;
        let bridge = plan.iter().find_map(|op| match op {
            Op::AttachToBridge(a) if a.link == device => Some(a.bridge.clone()),
            _ => None,
        })?;
        Some((device, bridge))
    }

    /// Plugs `port` (bound here, with an attachment), replacing an older wiring of it.
    pub async fn plug(&mut self, port: &HostPort) -> Result<(), String> {
        let binding = port
            .binding
            .as_ref()
            .filter(|b| b.attachment.is_some())
            .ok_or_else(|| format!("port {} has nothing to plug on this host", port.id))?;
        if self.plugged.contains_key(&port.id) && !self.is_current(port) {
            self.unplug(&port.id).await?;
        }
        let driver = self.driver(&binding.driver)?;
        let key = (port.network_id.clone(), binding.driver.clone());
        let local_vlan = self.local_vlan(&port.network_id)?;
        if !self.networks.contains_key(&key) {
            let ctx = self.network_context(binding, local_vlan)?;
            let plan = driver
                .setup_network(&ctx)
                .map_err(|e| format!("{} setup-network: {e}", binding.driver))?;
            self.executor
                .apply(&plan)
                .await
                .map_err(|e| e.to_string())?;
            self.networks.insert(key.clone(), BTreeSet::new());
            self.network_plans.insert(key.clone(), plan);
        } else if self.plugged.contains_key(&port.id) {
            // Plugged again as it was (its status was not ACTIVE, or its devices drifted):
            // the network's devices may be what went missing.
            if let Some(plan) = self.network_plans.get(&key) {
                self.executor.apply(plan).await.map_err(|e| e.to_string())?;
            }
        }
        let ctx = self.port_context(port, binding, local_vlan)?;
        let plan = driver
            .plug_port(&ctx)
            .map_err(|e| format!("{} plug-port: {e}", binding.driver))?;
        self.executor
            .apply(&plan)
            .await
            .map_err(|e| e.to_string())?;
        self.plugged.insert(port.id.clone(), port.clone());
        self.port_plans.insert(port.id.clone(), plan);
        self.networks
            .entry(key)
            .or_default()
            .insert(port.id.clone());
        Ok(())
    }

    /// Unplugs a port plugged earlier (nothing if it was not), and tears its network down on
    /// this host when it was the network's last port.
    pub async fn unplug(&mut self, port_id: &str) -> Result<(), String> {
        let Some(port) = self.plugged.get(port_id).cloned() else {
            return Ok(());
        };
        let binding = port.binding.as_ref().expect("plugged ports are bound");
        let driver = self.driver(&binding.driver)?;
        let local_vlan = self.local_vlan(&port.network_id)?;
        let ctx = self.port_context(&port, binding, local_vlan)?;
        let plan = driver
            .unplug_port(&ctx)
            .map_err(|e| format!("{} unplug-port: {e}", binding.driver))?;
        self.executor
            .apply(&plan)
            .await
            .map_err(|e| e.to_string())?;
        self.plugged.remove(port_id);
        self.port_plans.remove(port_id);
        let key = (port.network_id.clone(), binding.driver.clone());
        let last = self.networks.get_mut(&key).is_some_and(|ports| {
            ports.remove(port_id);
            ports.is_empty()
        });
        if last {
            let ctx = self.network_context(binding, local_vlan)?;
            let plan = driver
                .teardown_network(&ctx)
                .map_err(|e| format!("{} teardown-network: {e}", binding.driver))?;
            self.executor
                .apply(&plan)
                .await
                .map_err(|e| e.to_string())?;
            self.networks.remove(&key);
            self.network_plans.remove(&key);
            if !self.networks.keys().any(|(n, _)| *n == port.network_id) {
                self.local_vlans
                    .release(&port.network_id)
                    .map_err(|e| format!("{e:#}"))?;
            }
        }
        Ok(())
    }

    /// The plans applied for a plugged port: its network's setup plan, then its plug plan.
    pub fn applied(&self, port_id: &str) -> impl Iterator<Item = &Op> {
        let port = self.plugged.get(port_id);
        let network = port
            .and_then(|p| {
                let driver = &p.binding.as_ref()?.driver;
                self.network_plans
                    .get(&(p.network_id.clone(), driver.clone()))
            })
            .into_iter()
            .flatten();
        network.chain(self.port_plans.get(port_id).into_iter().flatten())
    }

    /// The VXLAN devices the applied setup plans made, with their network.
    pub fn tunnel_devices(&self) -> Vec<(String, model::VxlanSpec)> {
        self.network_plans
            .iter()
            .flat_map(|((network_id, _), plan)| {
                plan.iter().filter_map(move |op| match op {
                    Op::EnsureVxlan(spec) => Some((network_id.clone(), spec.clone())),
                    _ => None,
                })
            })
            .collect()
    }

    /// Applies again what was applied for a plugged port (its network's setup plan and its
    /// plug plan): every step is idempotent, so only what is missing or differs changes.
    pub async fn reapply(&mut self, port_id: &str) -> Result<(), String> {
        let plan: Plan = self.applied(port_id).cloned().collect();
        self.executor.apply(&plan).await.map_err(|e| e.to_string())
    }

    fn driver(&self, name: &str) -> Result<Arc<Driver>, String> {
        self.drivers
            .get(name)
            .cloned()
            .ok_or_else(|| format!("the mechanism driver {name} is not loaded on this agent"))
    }

    fn local_vlan(&mut self, network_id: &str) -> Result<u16, String> {
        self.local_vlans
            .get_or_allocate(network_id)
            .map_err(|e| format!("{e:#}"))
    }

    fn agent_for(&self, driver: &str) -> Result<model::Agent, String> {
        let agent_type = self.driver(driver)?.description().agent_type.clone();
        self.agents
            .get(&agent_type)
            .cloned()
            .ok_or_else(|| format!("this agent does not run a {agent_type}"))
    }

    fn network_context(
        &self,
        binding: &HostBinding,
        local_vlan: u16,
    ) -> Result<model::NetworkContext, String> {
        Ok(model::NetworkContext {
            host: self.host.clone(),
            network: binding.network.clone(),
            segment: binding.segment.clone(),
            agent: self.agent_for(&binding.driver)?,
            local_vlan: Some(local_vlan),
        })
    }

    fn port_context(
        &self,
        port: &HostPort,
        binding: &HostBinding,
        local_vlan: u16,
    ) -> Result<model::PortContext, String> {
        let attachment = binding
            .attachment
            .clone()
            .ok_or_else(|| format!("port {} has no attachment", port.id))?;
        Ok(model::PortContext {
            host: self.host.clone(),
            port: driver_port(port, binding),
            network: binding.network.clone(),
            segment: binding.segment.clone(),
            vif_type: binding.vif_type.clone(),
            vif_details: json_pairs(&binding.vif_details),
            agent: self.agent_for(&binding.driver)?,
            local_vlan: Some(local_vlan),
            attachment,
        })
    }
}

/// Two versions of a port need the same devices: same driver, segment, attachment, MAC and
/// VIF details (a changed name or address does not rewire).
fn same_wiring(a: &HostPort, b: &HostPort) -> bool {
    let (Some(x), Some(y)) = (&a.binding, &b.binding) else {
        return false;
    };
    a.mac_address == b.mac_address
        && x.driver == y.driver
        && x.segment == y.segment
        && x.attachment == y.attachment
        && x.vif_details == y.vif_details
        && x.network.mtu == y.network.mtu
}

fn driver_port(port: &HostPort, binding: &HostBinding) -> model::Port {
    model::Port {
        id: port.id.clone(),
        network_id: port.network_id.clone(),
        name: String::new(),
        mac_address: port.mac_address.clone(),
        fixed_ips: port.fixed_ips.clone(),
        vnic_type: model::vnic_type_named(&binding.vnic_type).unwrap_or(model::VnicType::Normal),
        binding_host: binding.host.clone(),
        binding_profile: json_pairs(&binding.profile),
        device_owner: port.device_owner.clone(),
        device_id: port.device_id.clone(),
        admin_state_up: port.admin_state_up,
    }
}

//! The node agent's settings: what it reports about its host (Neutron's agent
//! `configurations`) and how it reaches the host's Open vSwitch and DHCP.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use neutrino_model as model;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use neutrino_runtime::plugins::registry::DriversConfig;

/// The agent type the agent reports for the DHCP it serves, as Neutron's DHCP agent does.
pub const DHCP_AGENT_TYPE: &str = "DHCP agent";
/// The agent type the agent reports for the routers it serves, as Neutron's L3 agent does.
pub const L3_AGENT_TYPE: &str = "L3 agent";

/// Neutron's `firewall_driver` values this agent has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FirewallDriver {
    /// Security groups enforced on the ports' bridge ports (iptables, ipset, conntrack).
    IptablesHybrid,
    /// Every port open.
    Noop,
}

/// `[agent]` of the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSettings {
    /// Seconds between heartbeats (Neutron's `report_interval`); each is jittered by ±10 %.
    pub report_interval: u64,
    /// Seconds between full resyncs with the server (and sweeps of stale devices).
    pub resync_interval: u64,
    /// physical network -> bridge
    pub bridge_mappings: BTreeMap<String, String>,
    /// physical network -> interface
    pub interface_mappings: BTreeMap<String, String>,
    pub tunnel_types: Vec<String>,
    /// This host's address for tunnels (VXLAN).
    pub tunneling_ip: Option<String>,
    pub integration_bridge: String,
    /// `netdev` (userspace) works everywhere; `system` needs the kernel datapath.
    pub datapath_type: String,
    /// The ovsdb-server socket; None: Open vSwitch's default.
    pub ovs_db: Option<PathBuf>,
    /// Serve DHCP (report a "DHCP agent" and run dnsmasq for the networks given to it).
    pub dhcp: bool,
    /// Serve routers (report an "L3 agent" and make `qrouter-` namespaces for the routers
    /// given to it).
    pub l3: bool,
    /// Seconds an instance's DHCP client may take per NIC before the boot is reported failed.
    pub lease_timeout: u64,
    /// Neutron's `firewall_driver`: `iptables_hybrid` (default) or `noop`.
    pub firewall_driver: FirewallDriver,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            report_interval: 30,
            resync_interval: 300,
            bridge_mappings: BTreeMap::new(),
            interface_mappings: BTreeMap::new(),
            tunnel_types: vec!["vxlan".into()],
            tunneling_ip: None,
            integration_bridge: "br-int".into(),
            datapath_type: "netdev".into(),
            ovs_db: None,
            dhcp: true,
            l3: true,
            lease_timeout: 10,
            firewall_driver: FirewallDriver::IptablesHybrid,
        }
    }
}

impl AgentSettings {
    pub fn report_interval(&self) -> Duration {
        Duration::from_secs(self.report_interval.max(1))
    }

    /// The `configurations` dict every report carries.
    pub fn configurations(&self, drivers: &[String]) -> Map<String, Value> {
        let Value::Object(map) = json!({
            "bridge_mappings": self.bridge_mappings,
            "interface_mappings": self.interface_mappings,
            "tunnel_types": self.tunnel_types,
            "tunneling_ip": self.tunneling_ip,
            "integration_bridge": self.integration_bridge,
            "datapath_type": self.datapath_type,
            "ovs_hybrid_plug": true,
            "mechanism_drivers": drivers,
            "firewall_driver": self.firewall_driver,
        }) else {
            unreachable!("a JSON object literal")
        };
        map
    }

    /// This agent as drivers see it in plug and setup calls.
    pub fn as_driver_agent(
        &self,
        host: &str,
        agent_type: &str,
        drivers: &[String],
    ) -> model::Agent {
        model::Agent {
            id: String::new(),
            agent_type: agent_type.into(),
            binary: "neutrino-agent".into(),
            host: host.into(),
            alive: true,
            admin_state_up: true,
            configurations: model::AgentConfigurations::from_reported(
                &self.configurations(drivers),
            ),
        }
    }
}

/// The configuration file of `neutrino serve` and `neutrino agent`: `[drivers]` (the mechanism
/// drivers, as for `neutrino drivers`) and `[agent]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    pub drivers: DriversConfig,
    pub agent: AgentSettings,
}

/// The keys of `[drivers]`; at the top level they are the format `neutrino drivers --config`
/// took before it read this file.
const DRIVERS_KEYS: [&str; 5] = [
    "mechanism_drivers",
    "plugin_dir",
    "cache_dir",
    "limits",
    "drivers",
];

impl NodeConfig {
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<NodeConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        NodeConfig::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// The file's text parsed; a drivers' key at the top level, or a driver's settings straight
    /// under `[drivers]`, is refused with where it goes.
    pub fn from_toml(text: &str) -> anyhow::Result<NodeConfig> {
        toml::from_str(text).map_err(|e| match misplaced(text) {
            Some(hint) => anyhow::anyhow!("{hint}"),
            None => anyhow::anyhow!("{e}"),
        })
    }
}

/// Why a file of the old `neutrino drivers --config` format is not this one, if it is one.
fn misplaced(text: &str) -> Option<String> {
    let table: toml::Table = text.parse().ok()?;
    if let Some(key) = table
        .keys()
        .find(|k| DRIVERS_KEYS.contains(&k.as_str()) && k.as_str() != "drivers")
    {
        return Some(format!(
            "unknown top-level key `{key}`: put it under [drivers] (the file of `neutrino \
             serve`, `agent` and `drivers` has a [drivers] table and an [agent] table)"
        ));
    }
    let drivers = table.get("drivers")?.as_table()?;
    let name = drivers
        .iter()
        .find(|(k, v)| !DRIVERS_KEYS.contains(&k.as_str()) && v.is_table())?
        .0;
    Some(format!(
        "unknown key `{name}` in [drivers]: a driver's settings go in \
         [drivers.drivers.{name}] (its `config` and `grant` tables)"
    ))
}

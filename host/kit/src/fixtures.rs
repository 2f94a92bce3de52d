//! Inputs the kit feeds a driver, in the spirit of Neutron's mechanism-driver test base:
//! `AGENTS` (live, configured), `AGENTS_DEAD`, `AGENTS_BAD` (live, right type, no mappings).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use neutrino_model::{
    Agent, AgentConfigurations, Attachment, AttachmentKind, BindContext, FixedIp, Network,
    NetworkContext, NetworkType, Port, PortContext, Segment, VnicType, network_type_name,
};

pub const HOST: &str = "conformance-host";
pub const PORT_ID: &str = "3f1c2a9e-7b44-4f7e-9a51-0c8d2b6f1e11";
pub const NETWORK_ID: &str = "9b7e2c1d-55aa-4c3e-8f10-2d4b6a8c0e12";
pub const INSTANCE_ID: &str = "c0ffee00-1111-4222-8333-444455556666";

/// The live agent's configurations; a `[fixtures]` table in the kit's `--config` file
/// replaces any of them. Serialised, the agent part is the `configurations` dict an agent
/// would report.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentFixture {
    #[serde(skip_serializing)]
    pub physical_network: String,
    pub bridge_mappings: BTreeMap<String, String>,
    pub interface_mappings: BTreeMap<String, String>,
    pub tunnel_types: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunneling_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration_bridge: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datapath_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ovs_hybrid_plug: Option<bool>,
}

impl Default for AgentFixture {
    fn default() -> Self {
        AgentFixture {
            physical_network: "physnet1".into(),
            bridge_mappings: BTreeMap::from([("physnet1".into(), "br-phys1".into())]),
            interface_mappings: BTreeMap::from([("physnet1".into(), "eth1".into())]),
            tunnel_types: vec!["vxlan".into()],
            tunneling_ip: Some("192.0.2.10".into()),
            integration_bridge: Some("br-int".into()),
            datapath_type: Some("netdev".into()),
            ovs_hybrid_plug: Some(true),
        }
    }
}

impl AgentFixture {
    /// The `configurations` dict as an agent reports it.
    pub fn reported(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => m,
            other => unreachable!("a struct serialises to an object, not {other:?}"),
        }
    }

    /// Converted as the server converts a registered agent's, so drivers meet here exactly
    /// what port binding hands them.
    fn configurations(&self) -> AgentConfigurations {
        AgentConfigurations::from_reported(&self.reported())
    }

    fn agent(&self, agent_type: &str, alive: bool, configurations: AgentConfigurations) -> Agent {
        Agent {
            id: "a9a9a9a9-0000-4000-8000-00000000000a".into(),
            agent_type: agent_type.into(),
            binary: "neutrino-agent".into(),
            host: HOST.into(),
            alive,
            admin_state_up: true,
            configurations,
        }
    }

    /// `AGENTS`: one live, fully configured agent of the type.
    pub fn live(&self, agent_type: &str) -> Vec<Agent> {
        vec![self.agent(agent_type, true, self.configurations())]
    }

    /// `AGENTS_DEAD`: the same agent, its heartbeat too old.
    pub fn dead(&self, agent_type: &str) -> Vec<Agent> {
        vec![self.agent(agent_type, false, self.configurations())]
    }

    /// `AGENTS_BAD`: the right type but no mapping of the physical network and no tunnels, and
    /// a live agent of another type that has everything.
    pub fn bad(&self, agent_type: &str) -> Vec<Agent> {
        let empty = AgentConfigurations {
            bridge_mappings: vec![("other-physnet".into(), "br-other".into())],
            interface_mappings: vec![("other-physnet".into(), "eth9".into())],
            tunnel_types: vec![],
            tunneling_ip: None,
            ..self.configurations()
        };
        vec![
            self.agent(agent_type, true, empty),
            self.agent("Conformance other agent", true, self.configurations()),
        ]
    }

    /// A one-segment network of the given type.
    pub fn network(&self, network_type: NetworkType) -> Network {
        let physnet = Some(self.physical_network.clone());
        let (physical_network, segmentation_id, mtu) = match network_type {
            NetworkType::Flat => (physnet, None, 1500),
            NetworkType::Vlan => (physnet, Some(100), 1500),
            NetworkType::Vxlan => (None, Some(1001), 1450),
            NetworkType::Gre => (None, Some(2001), 1458),
            NetworkType::Geneve => (None, Some(3001), 1442),
            NetworkType::Local => (None, None, 1500),
        };
        Network {
            id: NETWORK_ID.into(),
            name: "conformance".into(),
            project_id: "conformance".into(),
            mtu,
            admin_state_up: true,
            shared: false,
            external: false,
            segments: vec![Segment {
                id: format!("segment-{}", network_type_name(network_type)),
                network_type,
                physical_network,
                segmentation_id,
                mtu,
            }],
        }
    }
}

/// An instance's port on the fixture network, bound to the fixture host.
pub fn port(vnic_type: VnicType) -> Port {
    Port {
        id: PORT_ID.into(),
        network_id: NETWORK_ID.into(),
        name: "conformance-port".into(),
        mac_address: "fa:16:3e:12:34:56".into(),
        fixed_ips: vec![FixedIp {
            subnet_id: "5d1f0e3a-0000-4000-8000-000000000001".into(),
            ip_address: "10.0.0.5".into(),
        }],
        vnic_type,
        binding_host: HOST.into(),
        binding_profile: vec![],
        device_owner: "compute:nova".into(),
        device_id: INSTANCE_ID.into(),
        admin_state_up: true,
    }
}

pub fn bind_context(port: Port, network: Network, agents: Vec<Agent>) -> BindContext {
    BindContext {
        host: HOST.into(),
        level: 0,
        segments_to_bind: network.segments.clone(),
        upper_levels: vec![],
        port,
        network,
        agents,
    }
}

pub fn network_context(network: &Network, segment: &Segment, agent: &Agent) -> NetworkContext {
    NetworkContext {
        host: HOST.into(),
        network: network.clone(),
        segment: segment.clone(),
        agent: agent.clone(),
        local_vlan: Some(1),
    }
}

pub fn port_context(
    port: &Port,
    network: &Network,
    segment: &Segment,
    agent: &Agent,
    vif_type: &str,
    vif_details: &[(String, String)],
) -> PortContext {
    PortContext {
        host: HOST.into(),
        port: port.clone(),
        network: network.clone(),
        segment: segment.clone(),
        vif_type: vif_type.into(),
        vif_details: vif_details.to_vec(),
        agent: agent.clone(),
        local_vlan: Some(1),
        attachment: Attachment {
            kind: AttachmentKind::Instance,
            namespace: "inst-c0ffee00".into(),
            interface_name: "eth0".into(),
        },
    }
}

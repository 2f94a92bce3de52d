//! Inputs the kit feeds a driver, in the spirit of Neutron's mechanism-driver test base:
//! `AGENTS` (live, configured), `AGENTS_DEAD`, `AGENTS_BAD` (live, right type, no mappings).
//!
//! The identities in them (host, ids, MAC, address, segmentation ids) come from a [`Sample`]:
//! fixed for the host's own tests, drawn at random by every `plugin check`, so that a driver
//! cannot recognise the kit and behave only for it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use neutrino_model::{
    Agent, AgentConfigurations, Attachment, AttachmentKind, BindContext, FixedIp, Network,
    NetworkContext, NetworkType, Port, PortContext, Segment, VnicType, network_type_name,
};

/// The fixed sample's host (tests); `plugin check` draws another each run.
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
    /// The identities of the fixtures (not configurable).
    #[serde(skip)]
    pub sample: Sample,
}

/// The identities one run of the kit uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub host: String,
    pub port_id: String,
    pub network_id: String,
    pub network_name: String,
    pub project_id: String,
    pub subnet_id: String,
    pub instance_id: String,
    /// The instance's namespace, where plugged ports go.
    pub instance_namespace: String,
    pub agent_id: String,
    pub mac_address: String,
    pub ip_address: String,
    pub vlan: u32,
    pub vni: u32,
    pub local_vlan: u16,
}

impl Default for Sample {
    fn default() -> Self {
        Sample::fixed()
    }
}

impl Sample {
    /// The constants the host's own tests use.
    pub fn fixed() -> Sample {
        Sample {
            host: HOST.into(),
            port_id: PORT_ID.into(),
            network_id: NETWORK_ID.into(),
            network_name: "conformance".into(),
            project_id: "conformance".into(),
            subnet_id: "5d1f0e3a-0000-4000-8000-000000000001".into(),
            instance_id: INSTANCE_ID.into(),
            instance_namespace: "inst-c0ffee00".into(),
            agent_id: "a9a9a9a9-0000-4000-8000-00000000000a".into(),
            mac_address: "fa:16:3e:12:34:56".into(),
            ip_address: "10.0.0.5".into(),
            vlan: 100,
            vni: 1001,
            local_vlan: 1,
        }
    }

    /// Fresh identities: random UUIDs, a host name of a common shape, a MAC with Neutron's
    /// prefix, an address, VLAN and VNI, none of them the kit's own.
    pub fn random() -> Sample {
        let id = || uuid::Uuid::new_v4().to_string();
        let instance_id = id();
        let bytes = *uuid::Uuid::new_v4().as_bytes();
        let word = |i: usize| u32::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
        const SHAPES: [&str; 6] = ["compute", "node", "cmp", "hv", "worker", "rack"];
        let shape = SHAPES[usize::from(bytes[0]) % SHAPES.len()];
        Sample {
            host: format!("{shape}-{:03}-{:x}", bytes[1], word(2)),
            port_id: id(),
            network_id: id(),
            network_name: format!("net-{:x}", word(4)),
            project_id: uuid::Uuid::new_v4().simple().to_string(),
            subnet_id: id(),
            instance_namespace: neutrino_model::instance_namespace(&instance_id),
            instance_id,
            agent_id: id(),
            mac_address: format!(
                "fa:16:3e:{:02x}:{:02x}:{:02x}",
                bytes[6], bytes[7], bytes[8]
            ),
            ip_address: format!("10.{}.{}.{}", bytes[9], bytes[10], 2 + bytes[11] % 250),
            vlan: 2 + word(12) % 4093,
            vni: 1 + (word(12) << 8 | u32::from(bytes[14])) % 0xff_fffe,
            local_vlan: 1 + u16::from(bytes[15]) % 4094,
        }
    }

    /// An instance's port on the sample network, bound to the sample host.
    pub fn port(&self, vnic_type: VnicType) -> Port {
        Port {
            id: self.port_id.clone(),
            network_id: self.network_id.clone(),
            name: format!("port-{}", &self.port_id[..8]),
            mac_address: self.mac_address.clone(),
            fixed_ips: vec![FixedIp {
                subnet_id: self.subnet_id.clone(),
                ip_address: self.ip_address.clone(),
            }],
            vnic_type,
            binding_host: self.host.clone(),
            binding_profile: vec![],
            device_owner: "compute:nova".into(),
            device_id: self.instance_id.clone(),
            admin_state_up: true,
        }
    }

    pub fn bind_context(&self, port: Port, network: Network, agents: Vec<Agent>) -> BindContext {
        BindContext {
            host: self.host.clone(),
            level: 0,
            segments_to_bind: network.segments.clone(),
            upper_levels: vec![],
            port,
            network,
            agents,
        }
    }

    pub fn network_context(
        &self,
        network: &Network,
        segment: &Segment,
        agent: &Agent,
    ) -> NetworkContext {
        NetworkContext {
            host: self.host.clone(),
            network: network.clone(),
            segment: segment.clone(),
            agent: agent.clone(),
            local_vlan: Some(self.local_vlan),
        }
    }

    pub fn port_context(
        &self,
        port: &Port,
        network: &Network,
        segment: &Segment,
        agent: &Agent,
        vif_type: &str,
        vif_details: &[(String, String)],
    ) -> PortContext {
        PortContext {
            host: self.host.clone(),
            port: port.clone(),
            network: network.clone(),
            segment: segment.clone(),
            vif_type: vif_type.into(),
            vif_details: vif_details.to_vec(),
            agent: agent.clone(),
            local_vlan: Some(self.local_vlan),
            attachment: Attachment {
                kind: AttachmentKind::Instance,
                namespace: self.instance_namespace.clone(),
                interface_name: "eth0".into(),
            },
        }
    }
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
            sample: Sample::fixed(),
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
            id: self.sample.agent_id.clone(),
            agent_type: agent_type.into(),
            binary: "neutrino-agent".into(),
            host: self.sample.host.clone(),
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
            NetworkType::Vlan => (physnet, Some(self.sample.vlan), 1500),
            NetworkType::Vxlan => (None, Some(self.sample.vni), 1450),
            NetworkType::Gre => (None, Some(self.sample.vni + 1000), 1458),
            NetworkType::Geneve => (None, Some(self.sample.vni + 2000), 1442),
            NetworkType::Local => (None, None, 1500),
        };
        Network {
            id: self.sample.network_id.clone(),
            name: self.sample.network_name.clone(),
            project_id: self.sample.project_id.clone(),
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

/// An instance's port on the fixed sample's network, bound to its host.
pub fn port(vnic_type: VnicType) -> Port {
    Sample::fixed().port(vnic_type)
}

pub fn bind_context(port: Port, network: Network, agents: Vec<Agent>) -> BindContext {
    Sample::fixed().bind_context(port, network, agents)
}

pub fn network_context(network: &Network, segment: &Segment, agent: &Agent) -> NetworkContext {
    Sample::fixed().network_context(network, segment, agent)
}

pub fn port_context(
    port: &Port,
    network: &Network,
    segment: &Segment,
    agent: &Agent,
    vif_type: &str,
    vif_details: &[(String, String)],
) -> PortContext {
    Sample::fixed().port_context(port, network, segment, agent, vif_type, vif_details)
}

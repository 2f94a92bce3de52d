//! Real plans from the bundled drivers for kernel tests: the conformance fixtures, but with
//! fresh port, network and instance ids (so device and namespace names never meet another
//! test's) and the agent configuration the test chooses (its own bridges and interfaces).

use std::sync::Arc;

use neutrino::agent::protocol::instance_namespace;
use neutrino::conformance::{AgentFixture, fixtures};
use neutrino::plugins::{Driver, DriverSettings, Runtime, bundled};
use neutrino_model::{
    Agent, Attachment, AttachmentKind, BindDecision, Network, NetworkType, Op, PortContext,
    VnicType,
};

/// One driver, one network on one host.
pub struct NetworkStory {
    driver: Driver,
    agent: Agent,
    pub network: Network,
    vif_type: String,
    vif_details: Vec<(String, String)>,
}

/// One port of the story's network, plugged into its instance's namespace as `eth0`.
pub struct PortStory {
    pub ctx: PortContext,
}

impl PortStory {
    pub fn namespace(&self) -> &str {
        &self.ctx.attachment.namespace
    }
    pub fn mac(&self) -> &str {
        &self.ctx.port.mac_address
    }
    pub fn id(&self) -> &str {
        &self.ctx.port.id
    }
}

fn fresh_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A random MAC in OpenStack's `fa:16:3e` range.
pub fn fresh_mac() -> String {
    let b = uuid::Uuid::new_v4().into_bytes();
    format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

impl NetworkStory {
    /// Loads the bundled driver `name` with `config`, makes a network of type `nt` (a random
    /// VNI or VLAN id for segmented types) and binds a first port to check the driver takes it.
    pub fn new(
        runtime: &Arc<Runtime>,
        name: &str,
        agent_type: &str,
        fx: &AgentFixture,
        nt: NetworkType,
        config: &[(&str, &str)],
    ) -> NetworkStory {
        let settings = DriverSettings {
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..DriverSettings::default()
        };
        let driver = runtime
            .load_bytes(name, bundled::get(name).expect("bundled"), settings)
            .expect("loads");
        let mut network = fx.network(nt);
        network.id = fresh_id();
        let segment = &mut network.segments[0];
        if segment.segmentation_id.is_some() {
            let b = uuid::Uuid::new_v4().into_bytes();
            let random = u32::from_be_bytes([0, b[0], b[1], b[2]]);
            segment.segmentation_id = Some(match nt {
                NetworkType::Vlan => 1 + random % 4094,
                _ => 1 + random % ((1 << 24) - 1),
            });
        }
        let agent = fx.live(agent_type).remove(0);
        let mut port = fixtures::port(VnicType::Normal);
        port.network_id = network.id.clone();
        let decision = driver
            .bind_port(&fixtures::bind_context(
                port,
                network.clone(),
                vec![agent.clone()],
            ))
            .expect("bind-port");
        let BindDecision::Bound(bound) = decision else {
            panic!("{name} did not bind: {decision:?}")
        };
        NetworkStory {
            driver,
            agent,
            network,
            vif_type: bound.vif_type,
            vif_details: bound.vif_details,
        }
    }

    fn network_ctx(&self) -> neutrino_model::NetworkContext {
        fixtures::network_context(&self.network, &self.network.segments[0], &self.agent)
    }

    pub fn setup(&self) -> Vec<Op> {
        self.driver
            .setup_network(&self.network_ctx())
            .expect("setup")
    }

    pub fn teardown(&self) -> Vec<Op> {
        self.driver
            .teardown_network(&self.network_ctx())
            .expect("teardown")
    }

    /// A new instance port with a fresh id and MAC, on host-local VLAN `local_vlan`.
    pub fn port(&self, local_vlan: u16) -> PortStory {
        let mut port = fixtures::port(VnicType::Normal);
        port.id = fresh_id();
        port.network_id = self.network.id.clone();
        port.mac_address = fresh_mac();
        port.device_id = fresh_id();
        let mut ctx = fixtures::port_context(
            &port,
            &self.network,
            &self.network.segments[0],
            &self.agent,
            &self.vif_type,
            &self.vif_details,
        );
        ctx.local_vlan = Some(local_vlan);
        ctx.attachment = Attachment {
            kind: AttachmentKind::Instance,
            namespace: instance_namespace(&port.device_id),
            interface_name: "eth0".into(),
        };
        PortStory { ctx }
    }

    pub fn plug(&self, port: &PortStory) -> Vec<Op> {
        self.driver.plug_port(&port.ctx).expect("plug")
    }

    pub fn unplug(&self, port: &PortStory) -> Vec<Op> {
        self.driver.unplug_port(&port.ctx).expect("unplug")
    }
}

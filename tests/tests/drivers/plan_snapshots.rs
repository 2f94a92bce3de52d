//! Plans of every bundled driver for representative inputs, as text snapshots
//! (tests/tests/snapshots/). A change in what a driver would do to a host shows up in review.
//! After an intended change: `INSTA_UPDATE=always cargo test -p neutrino-tests --test plan_snapshots`.

use neutrino::conformance::{AgentFixture, fixtures};
use neutrino::plugins::{Driver, render};
use neutrino_model::{AttachmentKind, BindDecision, NetworkType, Port, VnicType};
use neutrino_tests::{bundled_driver, runtime};

const DHCP_PORT_ID: &str = "d4c0a1b2-3c4d-4e5f-8a9b-0c1d2e3f4a5b";

fn dhcp_port() -> Port {
    let mut port = fixtures::port(VnicType::Normal);
    port.id = DHCP_PORT_ID.into();
    port.mac_address = "fa:16:3e:aa:bb:cc".into();
    port.device_owner = "network:dhcp".into();
    port.device_id = format!(
        "dhcp5b1e4a38-0f2c-5d8e-9a47-1c3b5d7f9e21-{}",
        fixtures::NETWORK_ID
    );
    port.fixed_ips[0].ip_address = "10.0.0.2".into();
    port
}

/// Everything the driver would do for one network type: bind, set up the network, plug an
/// instance port and a DHCP port, unplug, tear down.
fn story(driver: &Driver, agent_type: &str, nt: NetworkType) -> String {
    let fx = AgentFixture::default();
    let network = fx.network(nt);
    let agents = fx.live(agent_type);
    let agent = &agents[0];
    let instance = fixtures::port(VnicType::Normal);
    let decision = driver
        .bind_port(&fixtures::bind_context(
            instance.clone(),
            network.clone(),
            agents.clone(),
        ))
        .unwrap();
    let BindDecision::Bound(bound) = decision else {
        panic!("{decision:?}")
    };
    let segment = &network.segments[0];
    let mut out = format!("bound {} vif_type={}\n", bound.segment_id, bound.vif_type);
    for (k, v) in &bound.vif_details {
        out += &format!("  {k} = {v}\n");
    }
    let nctx = fixtures::network_context(&network, segment, agent);
    let ictx = fixtures::port_context(
        &instance,
        &network,
        segment,
        agent,
        &bound.vif_type,
        &bound.vif_details,
    );
    let mut dctx = fixtures::port_context(
        &dhcp_port(),
        &network,
        segment,
        agent,
        &bound.vif_type,
        &bound.vif_details,
    );
    dctx.attachment.kind = AttachmentKind::Dhcp;
    dctx.attachment.namespace = format!("qdhcp-{}", fixtures::NETWORK_ID);
    dctx.attachment.interface_name = format!("ns-{}", &DHCP_PORT_ID[..11]);
    let sections = [
        ("setup-network", driver.setup_network(&nctx)),
        ("plug-port (instance)", driver.plug_port(&ictx)),
        ("plug-port (dhcp)", driver.plug_port(&dctx)),
        ("unplug-port (instance)", driver.unplug_port(&ictx)),
        ("teardown-network", driver.teardown_network(&nctx)),
    ];
    for (title, plan) in sections {
        out += &format!("\n# {title}\n{}\n", render::plan(&plan.unwrap()));
    }
    out
}

fn snapshot_driver(name: &str, agent_type: &str, types: &[NetworkType]) {
    let runtime = runtime();
    let driver = bundled_driver(&runtime, name);
    for &nt in types {
        let snapshot = format!("{name}-{}", neutrino_model::network_type_name(nt));
        insta::assert_snapshot!(snapshot, story(&driver, agent_type, nt));
    }
}

#[test]
fn flatdhcp_plans() {
    snapshot_driver("flatdhcp", "Flat DHCP agent", &[NetworkType::Flat]);
}

#[test]
fn ovs_hybrid_plans() {
    snapshot_driver(
        "ovs-hybrid",
        "Open vSwitch agent",
        &[NetworkType::Flat, NetworkType::Vlan, NetworkType::Vxlan],
    );
}

#[test]
fn linuxbridge_plans() {
    snapshot_driver(
        "linuxbridge",
        "Linux bridge agent",
        &[NetworkType::Flat, NetworkType::Vlan, NetworkType::Vxlan],
    );
}

//! The mechanism manager: driver order, every driver's reason kept, liveness, hierarchical
//! binding and the level limit.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use neutrino::binding::{
    BindingLimits, BindingOutcome, DEFAULT_AGENT_DOWN_TIME, MAX_BINDING_LEVELS, MechanismManager,
    MemorySegments, Verdict, agent_alive,
};
use neutrino::conformance::{AgentFixture, fixtures};
use neutrino::plugins::{Driver, Runtime};
use neutrino_model::{Agent, NetworkType, VnicType};
use neutrino_tests::{bundled_driver, runtime, test_driver};

const OVS: &str = "Open vSwitch agent";
const LB: &str = "Linux bridge agent";

fn manager(runtime: &Arc<Runtime>, names: &[&str]) -> MechanismManager {
    let drivers: Vec<Arc<Driver>> = names
        .iter()
        .map(|n| {
            Arc::new(if n.starts_with("misbehaving") {
                test_driver(runtime, n)
            } else {
                bundled_driver(runtime, n)
            })
        })
        .collect();
    MechanismManager::new(drivers)
}

fn ovs_agent_with_heartbeat(age: Duration) -> Agent {
    let now = SystemTime::now();
    let mut agent = AgentFixture::default().live(OVS).remove(0);
    agent.alive = agent_alive(now - age, now, DEFAULT_AGENT_DOWN_TIME);
    agent
}

#[test]
fn drivers_are_asked_in_order_and_the_first_fit_binds() {
    let runtime = runtime();
    let m = manager(&runtime, &["linuxbridge", "ovs-hybrid", "flatdhcp"]);
    let fx = AgentFixture::default();
    let network = fx.network(NetworkType::Vlan);
    let result = m.bind(&fixtures::port(VnicType::Normal), &network, &fx.live(OVS));
    assert_eq!(result.vif_type(), "ovs");
    let BindingOutcome::Bound {
        vif_details,
        levels,
        segment,
        ..
    } = &result.outcome
    else {
        panic!("{result:?}")
    };
    assert_eq!(vif_details["bridge_name"], "br-int");
    assert_eq!(vif_details["ovs_hybrid_plug"], true);
    assert_eq!(vif_details["datapath_type"], "netdev");
    assert_eq!(levels.len(), 1);
    assert_eq!(levels[0].driver, "ovs-hybrid");
    assert_eq!(segment.id, network.segments[0].id);
    assert_eq!(
        result.decisions.len(),
        2,
        "flatdhcp is never asked once ovs-hybrid bound"
    );
    assert_eq!(result.decisions[0].driver, "linuxbridge");
    assert!(
        matches!(&result.decisions[0].verdict, Verdict::Pass { reason } if reason.contains(LB))
    );
}

#[test]
fn failure_keeps_every_drivers_reason() {
    let runtime = runtime();
    let m = manager(&runtime, &["ovs-hybrid", "linuxbridge", "flatdhcp"]);
    let fx = AgentFixture::default();
    let result = m.bind(
        &fixtures::port(VnicType::Normal),
        &fx.network(NetworkType::Flat),
        &[],
    );
    assert_eq!(result.vif_type(), "binding_failed");
    let BindingOutcome::Failed { reason } = &result.outcome else {
        panic!()
    };
    for driver in ["ovs-hybrid", "linuxbridge", "flatdhcp"] {
        assert!(reason.contains(&format!("{driver}: ")), "{reason}");
    }
    assert_eq!(result.decisions.len(), 3);
    assert!(
        result
            .decisions
            .iter()
            .all(|d| matches!(d.verdict, Verdict::Pass { .. }))
    );
    // The decisions serialise for the API's /ports/{id}/binding.
    let json = serde_json::to_value(&result).unwrap();
    assert_eq!(json["status"], "failed");
    assert_eq!(json["decisions"][0]["driver"], "ovs-hybrid");
    assert_eq!(json["decisions"][0]["decision"], "pass");
}

#[test]
fn an_agent_is_dead_after_agent_down_time() {
    let runtime = runtime();
    let m = manager(&runtime, &["ovs-hybrid"]);
    let fx = AgentFixture::default();
    let (port, network) = (
        fixtures::port(VnicType::Normal),
        fx.network(NetworkType::Vxlan),
    );
    let fresh = m.bind(
        &port,
        &network,
        &[ovs_agent_with_heartbeat(Duration::from_secs(30))],
    );
    assert_eq!(fresh.vif_type(), "ovs");
    let stale = m.bind(
        &port,
        &network,
        &[ovs_agent_with_heartbeat(Duration::from_secs(76))],
    );
    assert_eq!(stale.vif_type(), "binding_failed");
    assert!(
        matches!(&stale.decisions[0].verdict, Verdict::Pass { reason } if reason.contains("not alive")),
        "{stale:?}"
    );
}

#[test]
fn no_host_means_unbound_and_no_segment_means_failed() {
    let runtime = runtime();
    let m = manager(&runtime, &["ovs-hybrid"]);
    let fx = AgentFixture::default();
    let mut port = fixtures::port(VnicType::Normal);
    port.binding_host.clear();
    assert_eq!(
        m.bind(&port, &fx.network(NetworkType::Flat), &fx.live(OVS))
            .vif_type(),
        "unbound"
    );
    let mut network = fx.network(NetworkType::Flat);
    network.segments.clear();
    let result = m.bind(&fixtures::port(VnicType::Normal), &network, &fx.live(OVS));
    assert!(
        matches!(&result.outcome, BindingOutcome::Failed { reason } if reason.contains("no segments"))
    );
}

#[test]
fn hierarchical_binding_continues_at_the_next_level() {
    let runtime = runtime();
    let m = manager(&runtime, &["misbehaving-hierarchical", "ovs-hybrid"]);
    let fx = AgentFixture::default();
    let network = fx.network(NetworkType::Vxlan);
    let result = m.bind(&fixtures::port(VnicType::Normal), &network, &fx.live(OVS));
    let BindingOutcome::Bound {
        levels,
        segment,
        vif_type,
        ..
    } = &result.outcome
    else {
        panic!("{result:?}")
    };
    assert_eq!(vif_type, "ovs");
    let drivers: Vec<(u8, &str)> = levels
        .iter()
        .map(|l| (l.level, l.driver.as_str()))
        .collect();
    assert_eq!(
        drivers,
        vec![(0, "misbehaving-hierarchical"), (1, "ovs-hybrid")]
    );
    assert_eq!(levels[0].segment_id, network.segments[0].id);
    assert_eq!(
        segment.network_type,
        NetworkType::Vlan,
        "the bottom segment is the dynamic VLAN"
    );
    // The driver named VLAN on physnet1; the host issued the id and recorded the segment.
    assert_eq!(segment.segmentation_id, Some(1000));
    assert_eq!(segment.physical_network.as_deref(), Some("physnet1"));
    assert_eq!(result.dynamic_segments, vec![segment.clone()]);
    assert_ne!(
        segment.id,
        format!("dynamic-vlan-for-{}", network.segments[0].id)
    );
    // At level 1 the hierarchical driver is asked too (it did not bind the VLAN) and passes.
    assert!(
        result
            .decisions
            .iter()
            .any(|d| d.level == 1 && d.driver == "misbehaving-hierarchical")
    );
}

#[test]
fn endless_hierarchy_stops_at_the_level_limit() {
    let runtime = runtime();
    let m = manager(&runtime, &["misbehaving-endless"]);
    let fx = AgentFixture::default();
    let result = m.bind(
        &fixtures::port(VnicType::Normal),
        &fx.network(NetworkType::Local),
        &fx.live(OVS),
    );
    assert_eq!(result.vif_type(), "binding_failed");
    let continued = result
        .decisions
        .iter()
        .filter(|d| matches!(d.verdict, Verdict::ContinueWith { .. }))
        .count();
    assert_eq!(continued, usize::from(MAX_BINDING_LEVELS));
    assert!(result.decisions.iter().any(
        |d| matches!(&d.verdict, Verdict::Skipped { reason } if reason.contains("level limit"))
    ));
}

#[test]
fn a_crashing_driver_is_skipped_with_its_reason() {
    let runtime = runtime();
    let m = manager(&runtime, &["misbehaving-panic", "ovs-hybrid"]);
    let fx = AgentFixture::default();
    let result = m.bind(
        &fixtures::port(VnicType::Normal),
        &fx.network(NetworkType::Flat),
        &fx.live(OVS),
    );
    assert_eq!(result.vif_type(), "ovs");
    assert!(
        matches!(&result.decisions[0].verdict, Verdict::Error { reason } if reason.contains("panics on purpose")),
        "{:?}",
        result.decisions[0]
    );
}

// ---- Issue 11: segments a driver continues with, and the work of one binding ----

#[test]
fn a_made_up_segment_is_a_malformed_answer_and_never_bound() {
    let runtime = runtime();
    let m = manager(&runtime, &["misbehaving-tenant-vlan", "ovs-hybrid"]);
    let fx = AgentFixture::default();
    let network = fx.network(NetworkType::Vxlan);
    let result = m.bind(&fixtures::port(VnicType::Normal), &network, &fx.live(OVS));
    let BindingOutcome::Bound {
        levels, segment, ..
    } = &result.outcome
    else {
        panic!("{result:?}")
    };
    // ovs-hybrid bound the network's own VXLAN; VLAN 200 reached no level.
    assert_eq!(segment, &network.segments[0]);
    assert_eq!(levels.len(), 1);
    assert!(result.dynamic_segments.is_empty());
    let refused = &result.decisions[0];
    assert_eq!(refused.driver, "misbehaving-tenant-vlan");
    assert!(
        matches!(&refused.verdict, Verdict::Error { reason }
            if reason.starts_with("malformed answer") && reason.contains("segmentation id 200")
                && reason.contains("not allocated to network")),
        "{refused:?}"
    );
}

#[test]
fn a_segment_id_of_the_network_must_match_the_hosts_record() {
    // The network's own segment named with another VLAN id is refused too.
    let runtime = runtime();
    let m = manager(&runtime, &["misbehaving-tenant-vlan"]);
    let fx = AgentFixture::default();
    let mut network = fx.network(NetworkType::Vlan);
    network.segments[0].id = "vlan-200".into();
    network.segments[0].segmentation_id = Some(201);
    let result = m.bind(&fixtures::port(VnicType::Normal), &network, &fx.live(OVS));
    assert_eq!(result.vif_type(), "binding_failed");
    assert!(
        matches!(&result.decisions[0].verdict, Verdict::Error { reason }
            if reason.contains("does not match the host's segment")),
        "{:?}",
        result.decisions
    );
}

#[test]
fn dynamic_segments_the_network_has_are_reused() {
    let runtime = runtime();
    let m = manager(&runtime, &["misbehaving-hierarchical", "ovs-hybrid"]);
    let fx = AgentFixture::default();
    let network = fx.network(NetworkType::Vxlan);
    let mut segments = MemorySegments::for_network(&network);
    let port = fixtures::port(VnicType::Normal);
    let first = m.bind_with(&port, &network, &fx.live(OVS), &mut segments);
    let second = m.bind_with(&port, &network, &fx.live(OVS), &mut segments);
    assert_eq!(first.dynamic_segments.len(), 1);
    assert_eq!(first.dynamic_segments, second.dynamic_segments);
    assert_eq!(
        segments.segments.len(),
        1,
        "one VLAN per network and physnet"
    );
}

#[test]
fn three_drivers_fanning_out_stop_at_the_work_cap() {
    let runtime = runtime();
    let fanout = Arc::new(test_driver(&runtime, "misbehaving-fanout"));
    let m = MechanismManager::new(vec![fanout.clone(), fanout.clone(), fanout]);
    let fx = AgentFixture::default();
    let started = std::time::Instant::now();
    let result = m.bind(
        &fixtures::port(VnicType::Normal),
        &fx.network(NetworkType::Vxlan),
        &fx.live(OVS),
    );
    let elapsed = started.elapsed();
    assert_eq!(result.vif_type(), "binding_failed");
    let work = result.work.clone().expect("work is recorded");
    let cap = m.limits().max_decisions;
    // The cap's own "skipped" entry is the one decision past it.
    assert_eq!(work.decisions, cap + 1, "{work:?}");
    assert!(work.stopped_by.as_deref().unwrap().contains("work limit"));
    assert_eq!(work.levels, MAX_BINDING_LEVELS);
    let BindingOutcome::Failed { reason } = &result.outcome else {
        unreachable!()
    };
    assert!(reason.contains("binding work limit reached"), "{reason}");
    println!(
        "fanout of 3 drivers: {} decisions, {} levels, {:?}",
        work.decisions, work.levels, elapsed
    );
}

#[test]
fn a_binding_stops_at_its_time_cap() {
    let runtime = runtime();
    let spin = Arc::new(test_driver(&runtime, "misbehaving-spin"));
    let m = MechanismManager::new(vec![
        spin.clone(),
        spin,
        Arc::new(bundled_driver(&runtime, "ovs-hybrid")),
    ])
    .with_limits(BindingLimits {
        max_time: Duration::from_millis(1),
        ..BindingLimits::default()
    });
    let fx = AgentFixture::default();
    let result = m.bind(
        &fixtures::port(VnicType::Normal),
        &fx.network(NetworkType::Flat),
        &fx.live(OVS),
    );
    // The first spin ran to its deadline, past the binding's whole time: nothing else asked.
    assert_eq!(result.vif_type(), "binding_failed");
    let work = result.work.unwrap();
    assert!(work.stopped_by.unwrap().contains("time limit"));
    assert_eq!(work.decisions, 2);
}

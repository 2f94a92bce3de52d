//! A hostile driver's answers (issue 11, findings 2-5 and 8): every attack of the `hostile`
//! fixture is refused whole, or cut short, with a reason that names it; nothing of a refused
//! plan reaches the executor, and a refused answer is never kept whole.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::contexts::{OVS, bind_ctx, port_ctx};
use neutrino::conformance::{AgentFixture, KitConfig, Outcome, check_file, fixtures};
use neutrino::plugins::validate::{MAX_REASON_BYTES, QUOTE_BYTES};
use neutrino::plugins::{CallError, Driver, DriverSettings, LoadFailure, Runtime};
use neutrino_model::{BindDecision, NetworkContext, NetworkType};
use neutrino_tests::{component, runtime};

fn hostile_with(runtime: &Arc<Runtime>, behaviour: &str, settings: DriverSettings) -> Driver {
    let mut settings = settings;
    settings.config = BTreeMap::from([("behaviour".to_string(), behaviour.to_string())]);
    runtime
        .load_file(&component("hostile"), settings)
        .expect("loads")
}

fn hostile(runtime: &Arc<Runtime>, behaviour: &str) -> Driver {
    hostile_with(runtime, behaviour, DriverSettings::default())
}

fn network_ctx() -> NetworkContext {
    let fx = AgentFixture::default();
    let network = fx.network(NetworkType::Vlan);
    let agent = fx.live(OVS).remove(0);
    fixtures::network_context(&network, &network.segments[0], &agent)
}

fn outside_grant<T: std::fmt::Debug>(r: Result<T, CallError>) -> Vec<String> {
    match r {
        Err(CallError::OutsideGrant(v)) => v,
        other => panic!("expected OutsideGrant, got {other:?}"),
    }
}

fn malformed<T: std::fmt::Debug>(r: Result<T, CallError>) -> String {
    match r {
        Err(CallError::Malformed(m)) => m,
        other => panic!("expected Malformed, got {:.300}", format!("{other:?}")),
    }
}

/// The well-behaved calls of the same driver still work (the callers' drivers misbehave in
/// bind-port or unplug-port only).
fn still_works(d: &Driver) {
    assert!(d.setup_network(&network_ctx()).is_ok());
    let plug = d.plug_port(&port_ctx());
    assert!(plug.is_ok(), "{plug:?}");
}

#[test]
fn host_devices_and_other_ports_devices_are_never_removed() {
    let runtime = runtime();
    let d = hostile(&runtime, "remove-host");
    let v = outside_grant(d.unplug_port(&port_ctx()));
    assert_eq!(v.len(), 4, "{v:#?}");
    assert!(
        v[0].starts_with(
            "op 2: removes link eth1, a physical interface: those are used, never removed"
        ),
        "{v:?}"
    );
    assert!(
        v[1].contains("link lo in the attachment namespace"),
        "{v:?}"
    );
    assert!(v[2].contains("link br-int is not granted"), "{v:?}");
    assert!(
        v[3].contains("removes link tapdeadbeef-00, which is not this call's"),
        "{v:?}"
    );
    // Its own devices, in its other calls, are its own to remove.
    assert!(hostile(&runtime, "").unplug_port(&port_ctx()).is_ok());
    still_works(&d);
}

#[test]
fn a_teardown_removes_only_its_network_s_devices() {
    let runtime = runtime();
    let d = hostile(&runtime, "remove-other-net");
    let v = outside_grant(d.teardown_network(&network_ctx()));
    assert_eq!(v.len(), 2, "{v:#?}");
    assert!(v[0].contains("removes link tap00000000-00"), "{v:?}");
    assert!(
        v[1].contains("removes namespace qhostile-ffffffff"),
        "{v:?}"
    );
    let own = hostile(&runtime, "")
        .teardown_network(&network_ctx())
        .unwrap();
    assert_eq!(own.len(), 1, "its own network's namespace: {own:?}");
}

#[test]
fn physical_interfaces_are_never_readdressed() {
    let runtime = runtime();
    let d = hostile(&runtime, "readdress");
    let v = outside_grant(d.plug_port(&port_ctx()));
    assert_eq!(v.len(), 2, "{v:#?}");
    assert!(
        v.iter()
            .all(|v| v.contains("re-addresses link eth1, a physical interface")),
        "{v:?}"
    );
}

#[test]
fn a_wildcard_physical_grant_needs_the_operator() {
    let runtime = runtime();
    let d = hostile(&runtime, "wildcard");
    assert!(d.grant().physical_interfaces.is_empty(), "{:?}", d.grant());
    let v = outside_grant(d.plug_port(&port_ctx()));
    assert_eq!(
        v,
        vec![
            "op 4: link eth0 is not granted",
            "op 4: link br-int is not granted"
        ]
    );
    // The operator says so: granted.
    let mut settings = DriverSettings::default();
    settings.grant.physical_interfaces = Some(vec!["*".into()]);
    let d = hostile_with(&runtime, "wildcard", settings);
    assert_eq!(d.grant().physical_interfaces, vec!["*"]);
    assert!(d.plug_port(&port_ctx()).is_ok());
}

#[test]
fn every_namespace_field_passes_the_name_check() {
    let runtime = runtime();
    let d = hostile(&runtime, "escape-namespace");
    let m = malformed(d.plug_port(&port_ctx()));
    assert!(
        m.contains("op 4: \"../../proc/1/ns/net\" is not a namespace name"),
        "{m}"
    );
    assert!(m.contains("op 5: \"..\" is not a namespace name"), "{m}");
    assert!(
        m.contains("op 6: \"/proc/1/ns/net\" is not a namespace name"),
        "{m}"
    );
}

#[test]
fn a_namespace_prefix_of_dots_is_refused_at_load() {
    let runtime = runtime();
    let settings = DriverSettings {
        config: BTreeMap::from([("behaviour".to_string(), "bad-prefix".to_string())]),
        ..DriverSettings::default()
    };
    let err = runtime
        .load_file(&component("hostile"), settings)
        .err()
        .expect("refused");
    match &err.cause {
        LoadFailure::BadDescription(m) => {
            assert!(m.contains("namespace prefix \"..\""), "{m}")
        }
        other => panic!("expected BadDescription, got {other:?}"),
    }
}

#[test]
fn smuggled_names_are_malformed() {
    let runtime = runtime();
    let d = hostile(&runtime, "smuggle");
    let m = malformed(d.plug_port(&port_ctx()));
    for name in ["\"tap\\u{b}1\"", "\"tap\\u{1b}[31m\"", "\"--\"", "\"-x\""] {
        assert!(
            m.contains(&format!("{name} is not an interface name")),
            "{name}: {m}"
        );
    }
    assert!(!m.contains('\u{1b}'), "the error carries no raw escape");
}

#[test]
fn huge_strings_are_malformed_and_cut_short() {
    let runtime = runtime();
    for (behaviour, what) in [
        (
            "huge-reason",
            "pass reason of 33554432 bytes is over the bound",
        ),
        (
            "huge-error",
            "error message of 33554432 bytes is over the bound",
        ),
        ("huge-details", "vif-details of 1048"),
    ] {
        let d = hostile(&runtime, behaviour);
        let m = malformed(d.bind_port(&bind_ctx()));
        assert!(m.contains(what), "{behaviour}: {m:.300}");
        assert!(
            m.len() < QUOTE_BYTES + 200 && m.len() < MAX_REASON_BYTES,
            "{behaviour}: an error of {} bytes",
            m.len()
        );
        still_works(&d);
    }
}

#[test]
fn a_plan_of_200000_ops_is_malformed() {
    let runtime = runtime();
    let d = hostile(&runtime, "many-ops");
    let m = malformed(d.plug_port(&port_ctx()));
    assert_eq!(m, "a plan of 200004 operations, over the bound of 1024");
}

#[test]
fn vif_types_are_the_declared_ones_and_details_distinct() {
    let runtime = runtime();
    let m = malformed(hostile(&runtime, "vif-failed").bind_port(&bind_ctx()));
    assert!(
        m.contains("vif-type \"binding_failed\" means not bound"),
        "{m}"
    );
    let m = malformed(hostile(&runtime, "vif-undeclared").bind_port(&bind_ctx()));
    assert!(
        m.contains("vif-type \"vhostuser\" is not among the vif-types it declared [\"ovs\"]"),
        "{m}"
    );
    let m = malformed(hostile(&runtime, "dup-details").bind_port(&bind_ctx()));
    assert!(
        m.contains("vif-details key \"port_filter\" appears twice"),
        "{m}"
    );
    assert!(matches!(
        hostile(&runtime, "").bind_port(&bind_ctx()),
        Ok(BindDecision::Bound(_))
    ));
}

/// A writer that keeps what the log subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_flooding_driver_s_log_is_cut_escaped_and_rate_limited() {
    use tracing_subscriber::util::SubscriberInitExt;
    let captured = Captured::default();
    let writer = captured.clone();
    let _guard = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish()
        .set_default();
    let runtime = runtime();
    let d = hostile(&runtime, "log-flood");
    let start = Instant::now();
    for _ in 0..4 {
        assert!(matches!(
            d.bind_port(&bind_ctx()),
            Ok(BindDecision::Bound(_))
        ));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(matches!(
        d.bind_port(&bind_ctx()),
        Ok(BindDecision::Bound(_))
    ));
    let elapsed = start.elapsed().as_secs_f64();
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("flood")).collect();
    // 5 calls x 300 lines asked; the burst (500) and the rate (100/s) let through far fewer.
    let allowed = 500.0 + 100.0 * elapsed + 1.0;
    assert!(
        lines.len() as f64 <= allowed && lines.len() >= 256,
        "{} lines in {elapsed:.2} s",
        lines.len()
    );
    assert!(lines.iter().all(|l| l.len() < 1400), "every line cut short");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{b}'),
        "control characters escaped"
    );
    assert!(
        lines[0].contains("\\u{1b}[31mflood\\u{b}xxx"),
        "{:.200}",
        lines[0]
    );
    assert!(
        lines[0].contains("(cut, 65547 bytes in all)"),
        "{:.1300}",
        lines[0]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("earlier lines dropped: over 100 lines/s")),
        "the first line after a drop says so"
    );
}

#[test]
fn the_kit_flags_what_the_host_refuses() {
    let kit = |behaviour: &str| {
        let kit: KitConfig =
            toml::from_str(&format!("[config]\nbehaviour = \"{behaviour}\"\n")).unwrap();
        check_file(&component("hostile"), &kit).unwrap()
    };
    let fail = |report: &neutrino::conformance::Report, case: &str| match report.outcome(case) {
        Some(Outcome::Fail(why)) => why.clone(),
        other => panic!("{case}: {other:?}\n{report}"),
    };
    let r = kit("remove-host");
    assert!(
        fail(&r, "vlan: unplug-port is idempotent")
            .contains("a physical interface: those are used, never removed"),
        "{r}"
    );
    let r = kit("vif-undeclared");
    assert!(
        fail(&r, "vlan: live agent gives bound").contains("vhostuser"),
        "{r}"
    );
    let r = kit("huge-reason");
    assert!(r.to_string().len() < 20_000, "the report is short");
}

//! Every kind of misbehaving driver is contained with a precise, typed error, and good drivers
//! (and the misbehaving driver's other calls) keep working in the same host afterwards.

use std::sync::Arc;
use std::time::Duration;

use crate::contexts::{bind_ctx, port_ctx};
use neutrino::plugins::{CallError, Driver, DriverSettings, Limits, LoadFailure, Runtime};
use neutrino_model::BindDecision;
use neutrino_tests::{bundled_driver, component, runtime, test_driver};

/// The host is still fine: a good driver binds, and the bad one's well-behaved calls work.
fn host_still_works(runtime: &Arc<Runtime>, bad: &Driver) {
    let good = test_driver(runtime, "misbehaving-good");
    assert!(matches!(
        good.bind_port(&bind_ctx()),
        Ok(BindDecision::Bound(_))
    ));
    let ovs = bundled_driver(runtime, "ovs-hybrid");
    assert!(matches!(
        ovs.bind_port(&bind_ctx()),
        Ok(BindDecision::Bound(_))
    ));
    bad.unplug_port(&port_ctx())
        .expect("the misbehaving driver's other calls still work");
}

#[test]
fn endless_loop_runs_out_of_fuel() {
    let limits = Limits {
        fuel: 5_000_000,
        deadline: Duration::from_secs(30),
        ..Limits::default()
    };
    let runtime = Runtime::new(limits, None).unwrap();
    let spin = test_driver(&runtime, "misbehaving-spin");
    assert_eq!(
        spin.bind_port(&bind_ctx()),
        Err(CallError::OutOfFuel { fuel: 5_000_000 })
    );
    host_still_works(&runtime, &spin);
}

#[test]
fn endless_loop_hits_the_deadline() {
    let limits = Limits {
        fuel: u64::MAX / 2,
        deadline: Duration::from_millis(50),
        ..Limits::default()
    };
    let runtime = Runtime::new(limits, None).unwrap();
    let spin = test_driver(&runtime, "misbehaving-spin");
    assert_eq!(
        spin.bind_port(&bind_ctx()),
        Err(CallError::DeadlineExceeded { millis: 50 })
    );
    host_still_works(&runtime, &spin);
}

#[test]
fn unbounded_memory_growth_hits_the_cap() {
    let limits = Limits {
        memory_bytes: 16 << 20,
        fuel: u64::MAX / 2,
        deadline: Duration::from_secs(30),
        ..Limits::default()
    };
    let runtime = Runtime::new(limits, None).unwrap();
    let hog = test_driver(&runtime, "misbehaving-hog");
    assert_eq!(
        hog.bind_port(&bind_ctx()),
        Err(CallError::MemoryCap {
            limit_bytes: 16 << 20
        })
    );
    host_still_works(&runtime, &hog);
}

#[test]
fn panic_is_a_trap_that_carries_the_message() {
    let runtime = runtime();
    let panicky = test_driver(&runtime, "misbehaving-panic");
    match panicky.bind_port(&bind_ctx()) {
        Err(CallError::Trap { output, .. }) => {
            assert!(
                output.contains("bind-port panics on purpose"),
                "output: {output}"
            )
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    host_still_works(&runtime, &panicky);
}

#[test]
fn plan_outside_the_grant_is_rejected_whole() {
    let runtime = runtime();
    let escape = test_driver(&runtime, "misbehaving-escape");
    match escape.plug_port(&port_ctx()) {
        Err(CallError::OutsideGrant(violations)) => {
            assert_eq!(violations.len(), 3, "{violations:?}");
            assert!(
                violations
                    .iter()
                    .any(|v| v.contains("link eth0 is not granted"))
            );
            assert!(
                violations
                    .iter()
                    .any(|v| v.contains("link br-ex is not granted"))
            );
            assert!(
                violations
                    .iter()
                    .any(|v| v.contains("namespace root-ns is not granted"))
            );
        }
        other => panic!("expected OutsideGrant, got {other:?}"),
    }
    host_still_works(&runtime, &escape);
}

#[test]
fn operator_narrowing_applies_to_plans() {
    let runtime = runtime();
    let mut settings = DriverSettings::default();
    settings.grant.ovs_bridges = Some(vec!["br-other".into()]);
    let good = runtime
        .load_file(&component("misbehaving-good"), settings)
        .unwrap();
    assert!(
        good.grant().ovs_bridges.is_empty(),
        "br-other was never declared, so nothing is left"
    );
    match good.plug_port(&port_ctx()) {
        Err(CallError::OutsideGrant(v)) => {
            assert!(v.iter().any(|v| v.contains("OVS bridge br-int")), "{v:?}")
        }
        other => panic!("expected OutsideGrant, got {other:?}"),
    }
}

#[test]
fn nonsense_answers_are_malformed() {
    let runtime = runtime();
    let nonsense = test_driver(&runtime, "misbehaving-nonsense");
    match nonsense.bind_port(&bind_ctx()) {
        Err(CallError::Malformed(m)) => {
            assert!(m.contains("\"no-such-segment\" was not offered"), "{m}")
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
    match nonsense.plug_port(&port_ctx()) {
        Err(CallError::Malformed(m)) => {
            assert!(m.contains("is not an interface name"), "{m}");
            assert!(m.contains("\"not-a-mac\" is not a MAC address"), "{m}");
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
    host_still_works(&runtime, &nonsense);
}

#[test]
fn forbidden_import_is_refused_at_load_naming_the_file() {
    let runtime = runtime();
    let path = component("misbehaving-clock");
    let err = runtime
        .load_file(&path, DriverSettings::default())
        .err()
        .expect("refused");
    assert!(
        matches!(&err.cause, LoadFailure::ForbiddenImports(i) if i.iter().any(|i| i.starts_with("wasi:clocks/wall-clock")))
    );
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("wasi:clocks/wall-clock"), "{message}");
    host_still_works(&runtime, &test_driver(&runtime, "misbehaving-good"));
}

#[test]
fn wrong_contract_version_is_refused_at_load_naming_the_file() {
    let runtime = runtime();
    let path = component("wrong-version");
    let err = runtime
        .load_file(&path, DriverSettings::default())
        .err()
        .expect("refused");
    match &err.cause {
        LoadFailure::UnsupportedVersion { found, supported } => {
            assert_eq!(found, "9.0.0");
            assert_eq!(supported, ">=0.1.0, <0.2.0");
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn garbage_is_not_a_component() {
    let runtime = runtime();
    let err = runtime
        .load_bytes(
            "garbage.wasm",
            b"\0asm but not really",
            DriverSettings::default(),
        )
        .err()
        .unwrap();
    assert!(matches!(err.cause, LoadFailure::NotAComponent(_)));
    assert!(
        err.to_string()
            .starts_with("cannot load driver garbage.wasm: not a valid WebAssembly component")
    );
}

#[test]
fn a_failed_instance_is_discarded_and_the_next_call_gets_a_new_one() {
    let runtime = runtime();
    let panicky = test_driver(&runtime, "misbehaving-panic");
    let mut session = panicky.session().unwrap();
    assert!(matches!(
        session.bind_port(&bind_ctx()),
        Err(CallError::Trap { .. })
    ));
    assert!(
        matches!(session.unplug_port(&port_ctx()), Err(CallError::Host(_))),
        "a trapped instance is not reused"
    );
    assert!(
        panicky.unplug_port(&port_ctx()).is_ok(),
        "a fresh instance works"
    );
}

#[test]
fn many_failing_calls_do_not_exhaust_the_instance_pool() {
    let limits = Limits {
        max_instances: 4,
        ..Limits::default()
    };
    let runtime = Runtime::new(limits, None).unwrap();
    let panicky = test_driver(&runtime, "misbehaving-panic");
    for _ in 0..50 {
        assert!(matches!(
            panicky.bind_port(&bind_ctx()),
            Err(CallError::Trap { .. })
        ));
    }
    host_still_works(&runtime, &panicky);
}

//! The conformance kit passes every bundled driver and the example, and catches each kind of
//! misbehaving driver with the case that names the problem.

use neutrino::conformance::{KitConfig, Outcome, Report, check_bytes, check_file};
use neutrino::plugins::bundled;
use neutrino_tests::component;

fn assert_certified(report: &Report) {
    assert!(report.ok(), "{report}");
    assert!(report.passed() >= 15, "{report}");
}

#[test]
fn bundled_drivers_are_certified() {
    for (name, bytes) in bundled::BUNDLED {
        let report = check_bytes(name, bytes, &KitConfig::default()).unwrap();
        assert_certified(&report);
    }
}

#[test]
fn the_example_driver_is_certified() {
    assert_certified(&check_file(&component("macvlan"), &KitConfig::default()).unwrap());
}

/// The fixture's "good" driver binds the first segment it is offered whatever its type or
/// physical network: it never traps, but the kit still refuses it.
#[test]
fn a_sloppy_driver_is_not_certified() {
    let report = check_file(&component("misbehaving-good"), &KitConfig::default()).unwrap();
    assert!(failed(&report, "unsupported network type").contains("bound segment segment-gre"));
    assert!(failed(&report, "flat: agent without mappings").contains("bound segment segment-flat"));
    assert_eq!(report.outcome("flat: plug-port plan"), Some(&Outcome::Pass));
    assert_eq!(report.outcome("faults contained"), Some(&Outcome::Pass));
}

fn failed(report: &Report, case: &str) -> String {
    // Cases are named "<network type>: ..." or by what they check; match on the start.
    match report.outcome(case) {
        Some(Outcome::Fail(why)) => why.clone(),
        other => panic!("case {case:?} should fail, got {other:?}\n{report}"),
    }
}

#[test]
fn misbehaving_drivers_fail_the_right_cases() {
    let kit = KitConfig::default();
    let check = |name: &str| check_file(&component(name), &kit).unwrap();

    let r = check("misbehaving-clock");
    assert!(failed(&r, "imports only").contains("wasi:clocks/wall-clock"));
    let r = check("wrong-version");
    assert!(failed(&r, "exports the driver interface").contains("9.0.0"));
    let r = check("misbehaving-escape");
    assert!(failed(&r, "flat: plug-port plan").contains("not granted"));
    let r = check("misbehaving-nonsense");
    assert!(failed(&r, "flat: live agent").contains("malformed answer"));
    let r = check("misbehaving-panic");
    assert!(failed(&r, "hostile input").contains("panics on purpose"));
    assert!(failed(&r, "faults contained").contains("trapped"));
    for r in [check("misbehaving-spin"), check("misbehaving-hog")] {
        assert!(!r.ok());
        assert!(
            failed(&r, "flat: live agent").contains("ran out of fuel")
                || failed(&r, "flat: live agent").contains("memory")
        );
    }
}

#[test]
fn kit_config_passes_driver_settings_and_narrowing() {
    let kit: KitConfig = toml::from_str(
        r#"
        [config]
        flat_network_bridge = "br100"
        [grant]
        physical_interfaces = ["eth1"]
        [fixtures]
        bridge_mappings = {}
        interface_mappings = { physnet1 = "eth1" }
        "#,
    )
    .unwrap();
    let report = check_bytes("flatdhcp", bundled::get("flatdhcp").unwrap(), &kit).unwrap();
    assert_certified(&report);
    // Narrow the grant below what the driver needs: the kit reports it.
    let narrow: KitConfig = toml::from_str("[grant]\nphysical_interfaces = [\"eth9\"]\n").unwrap();
    let report = check_bytes("flatdhcp", bundled::get("flatdhcp").unwrap(), &narrow).unwrap();
    assert!(failed(&report, "flat: setup-network plan").contains("link eth1 is not granted"));
}

// ---- Issue 11: a kit a driver cannot recognise, that prints what it must, named right ----

/// A driver that behaves only for the kit's old fixed host is caught: every run draws another
/// host; what it answered is cut short and its terminal escapes shown escaped.
#[test]
fn a_driver_that_recognises_the_kit_is_caught_and_its_reason_cut() {
    let report = check_file(&component("misbehaving-kit-aware"), &KitConfig::default()).unwrap();
    assert!(!report.ok());
    let why = failed(&report, "flat: live agent");
    // Its 1.3 MB reason is over the host's bound for a reason: a malformed answer, quoted
    // short with its escapes shown escaped.
    assert!(why.contains("is over the bound"), "{why}");
    assert!(why.contains("\\u{1b}[31mnot the kit"), "{why}");
    assert!(why.len() < 1_000, "{} bytes", why.len());
    let printed = report.to_string();
    assert!(!printed.contains('\u{1b}'));
    assert!(printed.len() < 64 * 1024, "{} bytes printed", printed.len());
}

#[test]
fn fixtures_differ_from_run_to_run() {
    use neutrino::conformance::fixtures::Sample;
    let (a, b) = (Sample::random(), Sample::random());
    assert_ne!(a.host, b.host);
    assert_ne!(a.port_id, b.port_id);
    assert_ne!(a.mac_address, b.mac_address);
    for s in [&a, &b] {
        assert_ne!(s.host, "conformance-host");
        assert!(s.mac_address.starts_with("fa:16:3e:"), "{}", s.mac_address);
        assert!((2..=4094).contains(&s.vlan), "{}", s.vlan);
    }
}

/// A component of a supported version whose exports have other types is a contract mismatch,
/// named as such, not an incoherent description.
#[test]
fn a_contract_type_mismatch_is_named_as_such() {
    let report = check_file(&component("wrong-types"), &KitConfig::default()).unwrap();
    let why = failed(
        &report,
        "exports the contract's functions with the contract's types",
    );
    assert!(!why.is_empty());
    assert!(report.outcome("describe is coherent").is_none(), "{report}");
}

/// Continuing with a segment the host did not issue (another project's VLAN 200) fails the kit.
#[test]
fn a_made_up_segment_fails_the_kit() {
    let report = check_file(&component("misbehaving-tenant-vlan"), &KitConfig::default()).unwrap();
    let why = failed(&report, "vxlan: live agent");
    assert!(why.contains("malformed answer"), "{why}");
    assert!(why.contains("segmentation id 200"), "{why}");
    // Asking the host for a VLAN (no id of its own) is how hierarchical drivers continue.
    let report = check_file(
        &component("misbehaving-hierarchical"),
        &KitConfig::default(),
    )
    .unwrap();
    assert!(
        matches!(report.outcome("vxlan: live agent"), Some(Outcome::Skip(_))),
        "{report}"
    );
}

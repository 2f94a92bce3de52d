//! `neutrino plugin check` and `neutrino drivers` as a user runs them.

use std::process::Command;

use neutrino::plugins::bundled;

fn neutrino(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_neutrino"))
        .args(args)
        .output()
        .expect("run neutrino");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn plugin_check_passes_a_bundled_driver_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("linuxbridge.wasm");
    std::fs::write(&file, bundled::get("linuxbridge").unwrap()).unwrap();
    let (code, out) = neutrino(&["plugin", "check", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("PASS  vxlan: live agent gives bound with vif type and details"),
        "{out}"
    );
    assert!(out.contains(" 0 failed"), "{out}");
}

#[test]
fn plugin_check_fails_a_broken_file_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.wasm");
    std::fs::write(&file, b"not wasm at all").unwrap();
    let (code, out) = neutrino(&["plugin", "check", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  is a loadable component"), "{out}");
    assert!(out.contains("broken.wasm"), "{out}");
}

#[test]
fn plugin_check_reports_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flatdhcp.wasm");
    std::fs::write(&file, bundled::get("flatdhcp").unwrap()).unwrap();
    let (code, out) = neutrino(&["plugin", "check", "--json", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        report["cases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["outcome"] != "fail")
    );
}

#[test]
fn drivers_lists_the_configured_order() {
    let (code, out) = neutrino(&["drivers"]);
    assert_eq!(code, 0, "{out}");
    let ovs = out.find("1. ovs-hybrid").expect(&out);
    let lb = out.find("2. linuxbridge").expect(&out);
    let flat = out.find("3. flatdhcp").expect(&out);
    assert!(ovs < lb && lb < flat);
}

#[test]
fn drivers_refuses_an_unknown_driver_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("drivers.toml");
    std::fs::write(&config, "mechanism_drivers = [\"ovs-hybrid\", \"sriov\"]\n").unwrap();
    let (code, out) = neutrino(&["drivers", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("cannot load driver sriov"), "{out}");
}

//! The crate graph is the architecture (ARCHITECTURE.md): each crate under `host/` may use only
//! the crates of ours listed here. A new dependency against the map fails this test, so the map
//! changes on purpose or not at all.

use std::collections::BTreeMap;
use std::process::Command;

const ALLOWED: &[(&str, &[&str])] = &[
    ("neutrino-model", &[]),
    ("neutrino-ipam", &[]),
    ("neutrino-proto", &["neutrino-model"]),
    ("neutrino-runtime", &["neutrino-model", "neutrino-sdk"]),
    ("neutrino-store", &["neutrino-ipam", "neutrino-model"]),
    ("neutrino-kit", &["neutrino-model", "neutrino-runtime"]),
    (
        "neutrino-agent",
        &[
            "neutrino-ipam",
            "neutrino-model",
            "neutrino-proto",
            "neutrino-runtime",
        ],
    ),
    (
        "neutrino-core",
        &[
            "neutrino-ipam",
            "neutrino-model",
            "neutrino-proto",
            "neutrino-runtime",
            "neutrino-store",
        ],
    ),
    (
        "neutrino-api",
        &[
            "neutrino-core",
            "neutrino-ipam",
            "neutrino-model",
            "neutrino-proto",
            "neutrino-runtime",
            "neutrino-store",
        ],
    ),
    ("neutrino-bench", &["neutrino-api"]),
];

#[test]
fn every_crate_uses_only_what_the_map_allows() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours: BTreeMap<String, Vec<String>> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let mut deps: Vec<String> = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                // Normal dependencies only: tests may use more.
                .filter(|d| {
                    d["kind"].is_null() && d["name"].as_str().unwrap().starts_with("neutrino-")
                })
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect();
            deps.sort();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect();
    for (krate, allowed) in ALLOWED {
        let uses = ours
            .get(*krate)
            .unwrap_or_else(|| panic!("{krate} is not in the workspace"));
        assert_eq!(uses, allowed, "{krate} uses crates the map does not allow");
    }
    // Every crate under host/ is on the map.
    for name in ours.keys().filter(|n| n.starts_with("neutrino-")) {
        let on_map = ALLOWED.iter().any(|(k, _)| k == name)
            || ["neutrino-sdk", "neutrino-wasm-build", "neutrino-tests"].contains(&name.as_str())
            || name.starts_with("neutrino-driver-")
            || name.starts_with("neutrino-example-")
            || name.starts_with("neutrino-fixture-");
        assert!(on_map, "{name} is not on the map in ARCHITECTURE.md");
    }
}

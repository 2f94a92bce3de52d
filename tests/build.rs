//! Builds the test-only components: the example driver, the misbehaving drivers (one per
//! feature), the hostile driver (one component, its attack chosen by a setting) and the
//! wrong-contract-version driver. `src/lib.rs` exposes their paths.

use neutrino_wasm_build::{Component, build, watch, workspace_root};

const MISBEHAVIOURS: &[&str] = &[
    "good",
    "spin",
    "hog",
    "panic",
    "escape",
    "clock",
    "nonsense",
    "hierarchical",
    "endless",
    // Issue 11: segments and binding work.
    "tenant-vlan",
    "fanout",
    "kit-aware",
];

fn main() {
    let root = workspace_root(1);
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    for dir in [
        "examples/macvlan",
        "tests/fixtures/misbehaving",
        "tests/fixtures/hostile",
        "tests/fixtures/wrong-version",
        "tests/fixtures/wrong-types",
    ] {
        watch(&root.join(dir));
    }
    let names: Vec<String> = MISBEHAVIOURS
        .iter()
        .map(|f| format!("misbehaving-{f}"))
        .collect();
    let features: Vec<[&str; 1]> = MISBEHAVIOURS.iter().map(|f| [*f]).collect();
    let mut components = vec![
        Component {
            package: "neutrino-example-macvlan",
            features: &[],
            output_name: "macvlan",
        },
        Component {
            package: "neutrino-fixture-wrong-version",
            features: &[],
            output_name: "wrong-version",
        },
        Component {
            package: "neutrino-fixture-hostile",
            features: &[],
            output_name: "hostile",
        },
        Component {
            package: "neutrino-fixture-wrong-types",
            features: &[],
            output_name: "wrong-types",
        },
    ];
    for (name, features) in names.iter().zip(&features) {
        components.push(Component {
            package: "neutrino-fixture-misbehaving",
            features,
            output_name: name,
        });
    }
    build(&root, &out_dir, &components);
}

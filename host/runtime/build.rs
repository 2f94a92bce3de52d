//! Builds the three bundled mechanism drivers (plugins/*) as components and embeds them in the
//! `neutrino` binary, so that `neutrino serve` and the conformance kit work out of the box.

use neutrino_wasm_build::{Component, build, watch, workspace_root};

const BUNDLED: &[(&str, &str)] = &[
    ("neutrino-driver-flatdhcp", "flatdhcp"),
    ("neutrino-driver-ovs-hybrid", "ovs-hybrid"),
    ("neutrino-driver-linuxbridge", "linuxbridge"),
];

fn main() {
    let root = workspace_root(2);
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    for (_, name) in BUNDLED {
        watch(&root.join("plugins").join(name));
    }
    let components: Vec<Component> = BUNDLED
        .iter()
        .map(|(package, name)| Component {
            package,
            features: &[],
            output_name: name,
        })
        .collect();
    build(&root, &out_dir, &components);
}

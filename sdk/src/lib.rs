//! # neutrino-sdk
//!
//! Everything a mechanism driver needs, and nothing of the host:
//!
//! - the contract's types ([`types`]) and the [`Driver`] trait a driver implements,
//! - [`export_driver!`] to turn a type into a WebAssembly component,
//! - [`plan::PlanBuilder`] to write plans of kernel operations,
//! - [`names`] for Neutron's device names (`tap`, `qbr`, `qvb`, `qvo`, `brq`, ...),
//! - [`agent::bind_with_agents`], the binding skeleton of agent-based drivers, and helpers for
//!   what every driver reads and checks (JSON texts in `vif-details`, Neutron's spellings of
//!   network and vNIC types, MACs, MTUs, interface names),
//! - [`log`] and [`config`], the only two things a driver may import,
//! - [`testing`] to call the same driver code natively, as plain Rust, in unit tests.
//!
//! A driver is a pure function of its inputs: no clock, no randomness, no files, no network.
//! Use `BTreeMap` rather than `HashMap` (whose seed needs randomness, an import the host refuses).
//!
//! ## A driver of your own, outside the Neutrino repository
//!
//! ```sh
//! neutrino plugin new mydriver && cd mydriver   # Cargo.toml, src/lib.rs, src/tests.rs, README.md, neutrino.toml
//! cargo test                                     # natively, with [`testing`]
//! cargo build --release --target wasm32-wasip2   # target/wasm32-wasip2/release/neutrino_driver_mydriver.wasm
//! neutrino plugin inspect <file>.wasm            # its imports and exports
//! neutrino plugin check <file>.wasm              # the conformance kit
//! neutrino plugin plan <file>.wasm --network-type vlan   # its decision and plans for a sample port
//! ```
//!
//! The project depends on this crate by path (`neutrino-sdk = { path = "/path/to/neutrino/sdk" }`,
//! the `sdk/` of the source tree the `neutrino` binary was built from unless `--sdk` names
//! another), builds as a `cdylib` (the component) and an `rlib` (the unit tests), and is its own
//! workspace. Loaded by the server: copy the component to `<plugin_dir>/<name>.wasm` and list
//! the name in `mechanism_drivers`, both under `[drivers]` in the file of `neutrino serve
//! --config` (and of `agent` and `drivers`). A port binds when a live agent of the driver's
//! `agent_type` is on the port's host: a `neutrino agent` with the driver in its `[drivers]`
//! reports one, or, to try it, the heartbeat `POST /internal/agents/report` with
//! `{"agent": {"agent_type": "mydriver agent", "host": "compute-1", "configurations":
//! {"interface_mappings": {"physnet1": "eth1"}}}}` and the header `X-Neutrino-Agent-Token`
//! (the server's `<data-dir>/agent-token` under `serve --shared-agent-token`).
//! `examples/macvlan/README.md` walks through every step.
//!
//! ## Contract versions
//!
//! The SDK builds against `sdk/wit/driver.wit`, contract [`CONTRACT_VERSION`]: the development
//! contract lives inside this crate (the only copy of it), so the SDK is an ordinary dependency
//! from any directory (`neutrino-sdk = { path = "/path/to/neutrino/sdk" }`, or what
//! `neutrino plugin new` writes). Released versions are frozen in the repository's
//! `wit/since_v*/` (`wit/since_v0.1.0/`; a test proves the development contract identical to
//! the snapshot of the version it declares) and hosts keep running them, so a driver built today
//! keeps loading on later hosts of the same contract line and beyond.
//!
//! Hosts check a driver's function types for equality at load (records with exactly the
//! expected fields, variants and enums with exactly the expected cases; the component model
//! has no subtyping of value types), while a component may export more, and a host may offer
//! more imports, than the other side uses. A 0.1.x release therefore only adds what old
//! drivers and old hosts can ignore: a new interface with functions a driver *may* export
//! (the host probes for it), a new function or interface the host offers for import (a driver
//! that uses it needs a host that has it), new types no existing function uses, new config
//! keys, new keys in the JSON-valued pairs. It never adds a field to an existing record or a
//! case to an existing variant or enum (a new plan `op`, a new `network-type`, ...), and never
//! changes an existing function: those, and any new function every driver must export, make
//! contract 0.2.

mod bindings {
    wit_bindgen::generate!({
        // The development contract, inside the crate so that the SDK builds from anywhere;
        // frozen released snapshots live in the repository's `wit/since_v*/`.
        path: "wit/driver.wit",
        world: "mechanism-driver",
        pub_export_macro: true,
        export_macro_name: "export_driver_component",
        default_bindings_module: "neutrino_sdk",
        additional_derives: [PartialEq, Eq],
    });
}

#[doc(hidden)]
pub use bindings::*;

/// The contract's data types.
pub mod types {
    pub use crate::bindings::neutrino::driver::types::*;
}

/// The trait a driver implements: `describe`, `bind_port`, `setup_network`,
/// `teardown_network`, `plug_port`, `unplug_port`.
pub use bindings::exports::neutrino::driver::driver::Guest as Driver;

pub mod agent;
pub mod config;
pub mod log;
pub mod names;
pub mod plan;
pub mod prelude;
pub mod testing;
mod util;

pub use agent::bind_with_agents;
pub use util::{
    agents_of_type, check_port_binding, check_segment_type, checked_ifname, json_bool,
    json_parse_bool, json_parse_str, json_str, network_type_name, pair, pairs_get, port_mac,
    segment_mtu, valid_mac, valid_mtu, vnic_type_name,
};

/// The contract version this SDK builds drivers for.
pub const CONTRACT_VERSION: &str = "0.1.0";

/// Exports a type implementing [`Driver`] as the component's `neutrino:driver/driver`.
///
/// Natively (unit tests, benchmarks) this expands to nothing, so several drivers can be linked
/// into one test binary and called as plain Rust.
#[macro_export]
macro_rules! export_driver {
    ($ty:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::export_driver_component!($ty);
    };
}

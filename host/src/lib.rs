//! Neutrino: an OpenStack Networking API v2.0 control plane whose mechanism drivers are
//! sandboxed WebAssembly components. See ARCHITECTURE.md for the map.
//!
//! This crate wires the crates under `host/` together (the `neutrino` binary, `serve` with its
//! embedded agent) and names them in one place for the integration tests.

pub use neutrino_agent as agent;
pub use neutrino_agent::dhcp;
pub use neutrino_api as api;
pub use neutrino_api::heartbeat;
pub use neutrino_bench as bench;
pub use neutrino_core as core;
pub use neutrino_ipam as ipam;
pub use neutrino_kit as conformance;
pub use neutrino_model as model;
pub use neutrino_runtime::{binding, plugins};
pub use neutrino_store as store;

pub mod server;

//! Neutrino: an OpenStack Networking API v2.0 control plane whose mechanism drivers are
//! sandboxed WebAssembly components. See ARCHITECTURE.md for the map.

pub mod agent;
pub mod api;
pub mod bench;
pub mod binding;
pub mod conformance;
pub mod dhcp;
pub mod heartbeat;
pub mod ipam;
pub mod plugins;
pub mod server;
pub mod store;

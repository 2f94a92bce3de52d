//! Neutrino's driver runtime: the wasmtime host of the mechanism driver components
//! ([`plugins`]: engine, loading, limits, one adapter per contract version to and from
//! `neutrino-model`, grants and plan checks) and the mechanism manager ([`binding`]: driver
//! order, binding levels, `binding_failed` with reasons). No SQL, no HTTP.

pub mod binding;
pub mod plugins;

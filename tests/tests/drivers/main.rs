//! The driver platform's integration tests, one binary: every bundled driver as a real
//! component in the wasmtime host (conformance, plans, binding), misbehaving drivers, the
//! registry. No root needed.

mod binding;
mod conformance;
mod contexts;
mod hostile;
mod misbehaving;
mod plan_snapshots;
mod registry;

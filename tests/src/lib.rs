//! Shared helpers of the integration tests: where the test components are, and a runtime.

use std::path::PathBuf;
use std::sync::Arc;

use neutrino::plugins::{Driver, DriverSettings, Limits, Runtime, bundled};

/// A component built by build.rs for the tests (`macvlan`, `wrong-version`, `misbehaving-<f>`).
pub fn component(name: &str) -> PathBuf {
    PathBuf::from(env!("OUT_DIR")).join(format!("{name}.wasm"))
}

/// A runtime with the default limits, but a deadline long enough for a loaded CI machine
/// running a debug build (the deadline tests set their own).
pub fn runtime() -> Arc<Runtime> {
    let limits = Limits {
        deadline: std::time::Duration::from_secs(5),
        ..Limits::default()
    };
    Runtime::new(limits, None).expect("runtime")
}

/// Loads a bundled driver (`flatdhcp`, `ovs-hybrid`, `linuxbridge`).
pub fn bundled_driver(runtime: &Arc<Runtime>, name: &str) -> Driver {
    let bytes = bundled::get(name).expect("bundled driver");
    runtime
        .load_bytes(name, bytes, DriverSettings::default())
        .expect("loads")
}

/// Loads a test component.
pub fn test_driver(runtime: &Arc<Runtime>, name: &str) -> Driver {
    runtime
        .load_file(&component(name), DriverSettings::default())
        .expect("loads")
}
pub mod api;
pub mod dataplane;
pub mod dhcp_probe;
pub mod kernel;
pub mod keystone;
pub mod ovs;
pub mod plans;
pub mod rig;

/// A benchmark's samples as "p50 / p99 / max" (sorted in place).
pub fn summary(samples: &mut [std::time::Duration]) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    format!(
        "{:.1?} / {:.1?} / {:.1?}",
        at(0.5),
        at(0.99),
        samples[samples.len() - 1]
    )
}

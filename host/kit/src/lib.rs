//! The driver conformance kit behind `neutrino plugin check FILE.wasm [--config FILE]`.
//!
//! It loads a component the way the server does, runs the contract suite against it and
//! returns a report: each case passed, failed (and why) or skipped (and why).

mod cases;
pub mod fixtures;
mod report;
pub mod sample;

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use neutrino_runtime::plugins::{DriverSettings, GrantNarrowing, Limits, Runtime};

pub use fixtures::AgentFixture;
pub use report::{CaseResult, Outcome, Report};

/// The kit's `--config` file (TOML).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KitConfig {
    /// Settings passed to the driver through its `config` import (string values).
    pub config: std::collections::BTreeMap<String, String>,
    /// Operator narrowing of the driver's grant, as the server would apply it.
    pub grant: GrantNarrowing,
    /// Agent configurations for the live-agent fixture.
    pub fixtures: AgentFixture,
    /// Per-call limits (defaults as the server's).
    pub limits: Option<Limits>,
}

impl KitConfig {
    pub fn from_file(path: &Path) -> anyhow::Result<KitConfig> {
        let text = std::fs::read_to_string(path)?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

/// Runs the whole suite against the component at `path`.
pub fn check_file(path: &Path, kit: &KitConfig) -> anyhow::Result<Report> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    check_bytes(&path.display().to_string(), &bytes, kit)
}

/// Runs the whole suite against a component in memory; `source` names it in the report.
pub fn check_bytes(source: &str, bytes: &[u8], kit: &KitConfig) -> anyhow::Result<Report> {
    let runtime: Arc<Runtime> = Runtime::new(kit.limits.clone().unwrap_or_default(), None)?;
    let settings = DriverSettings {
        config: kit.config.clone(),
        grant: kit.grant.clone(),
    };
    // Fresh identities every run: a driver cannot tell the kit's inputs from a real host's.
    let fixtures = AgentFixture {
        sample: fixtures::Sample::random(),
        ..kit.fixtures.clone()
    };
    Ok(cases::run(&runtime, source, bytes, settings, &fixtures))
}

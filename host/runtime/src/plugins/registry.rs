//! The ordered set of mechanism drivers, as ML2's `mechanism_drivers` option gives it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::error::{LoadError, LoadFailure};
use super::runtime::{Driver, DriverSettings, Runtime};
use super::{Limits, bundled};

/// The drivers section of Neutrino's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriversConfig {
    /// Driver names in the order they are asked to bind.
    pub mechanism_drivers: Vec<String>,
    /// Where `<name>.wasm` files are looked up first; bundled drivers are the fallback.
    pub plugin_dir: Option<PathBuf>,
    /// Where precompiled components are cached.
    pub cache_dir: Option<PathBuf>,
    pub limits: Limits,
    /// Per-driver settings by name.
    pub drivers: BTreeMap<String, DriverSettings>,
}

impl Default for DriversConfig {
    fn default() -> Self {
        DriversConfig {
            mechanism_drivers: vec!["ovs-hybrid".into(), "linuxbridge".into(), "flatdhcp".into()],
            plugin_dir: None,
            cache_dir: None,
            limits: Limits::default(),
            drivers: BTreeMap::new(),
        }
    }
}

/// Loaded drivers in binding order.
pub struct Registry {
    runtime: Arc<Runtime>,
    drivers: Vec<Arc<Driver>>,
}

impl Registry {
    /// Loads every configured driver; the first that fails stops the start-up with its reason.
    pub fn load(config: &DriversConfig) -> anyhow::Result<Registry> {
        let runtime = Runtime::new(config.limits.clone(), config.cache_dir.clone())?;
        let mut drivers: Vec<Arc<Driver>> = Vec::new();
        for name in &config.mechanism_drivers {
            let settings = config.drivers.get(name).cloned().unwrap_or_default();
            let driver = load_one(&runtime, config.plugin_dir.as_deref(), name, settings)?;
            if let Some(first) = drivers.iter().find(|d| d.name() == driver.name()) {
                return Err(LoadError {
                    source_name: driver.source().to_string(),
                    cause: LoadFailure::BadDescription(format!(
                        "describes itself as {:?}, the name of another configured driver ({})",
                        driver.name(),
                        first.source()
                    )),
                }
                .into());
            }
            drivers.push(Arc::new(driver));
        }
        Ok(Registry { runtime, drivers })
    }

    /// A registry of already loaded drivers, in the given order.
    pub fn from_drivers(runtime: Arc<Runtime>, drivers: Vec<Arc<Driver>>) -> Registry {
        Registry { runtime, drivers }
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    pub fn drivers(&self) -> &[Arc<Driver>] {
        &self.drivers
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Driver>> {
        self.drivers.iter().find(|d| d.name() == name)
    }
}

fn load_one(
    runtime: &Arc<Runtime>,
    dir: Option<&Path>,
    name: &str,
    settings: DriverSettings,
) -> Result<Driver, LoadError> {
    let file = dir
        .map(|d| d.join(format!("{name}.wasm")))
        .filter(|f| f.exists());
    let driver = match (&file, bundled::get(name)) {
        (Some(file), bundled) => {
            if bundled.is_some() {
                // Said once at start, where an operator reads what the server runs.
                tracing::warn!(
                    "driver {name}: {} replaces the bundled driver of that name",
                    file.display()
                );
            }
            runtime.load_file(file, settings)?
        }
        (None, Some(bytes)) => runtime.load_bytes(&format!("bundled:{name}"), bytes, settings)?,
        (None, None) => {
            return Err(LoadError {
                source_name: name.to_string(),
                cause: LoadFailure::Other(format!(
                    "no {name}.wasm in the plugin directory and no bundled driver of that name"
                )),
            });
        }
    };
    if driver.name() != name {
        return Err(LoadError {
            source_name: driver.source().to_string(),
            cause: LoadFailure::BadDescription(format!(
                "configured as {name:?} but describes itself as {:?}",
                driver.name()
            )),
        });
    }
    Ok(driver)
}

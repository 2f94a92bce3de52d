//! Contract 0.1 (`wit/since_v0.1.0/driver.wit`, frozen): wasmtime's bindings of it, the host's
//! imports for it, and calls into a 0.1 component in the model's types.
//!
//! The generated types never leave this module: [`adapter`] converts them to and from
//! `neutrino_model`. A later contract version is a new frozen snapshot and a module like this
//! one beside it; 0.1 components keep loading through this one, unchanged.

mod adapter;

use neutrino_model as model;
use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker};

use self::adapter::Adapt;
use self::neutrino::driver::{config, log, types};
use super::host_state::CallState;

wasmtime::component::bindgen!({
    path: "../../wit/since_v0.1.0",
    world: "mechanism-driver",
    // Serialize only for the test that checks the model's serde form against 0.1's.
    additional_derives: [serde::Serialize],
});

/// Adds the 0.1 imports (`log`, `config`, `types`) to the linker.
pub(super) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    MechanismDriver::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)
}

impl log::Host for CallState {
    fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => tracing::Level::TRACE,
            log::Level::Debug => tracing::Level::DEBUG,
            log::Level::Info => tracing::Level::INFO,
            log::Level::Warn => tracing::Level::WARN,
            log::Level::Error => tracing::Level::ERROR,
        };
        self.driver_log(level, message);
    }
}

impl types::Host for CallState {}

impl config::Host for CallState {
    fn get(&mut self, key: String) -> Option<String> {
        self.config_get(&key)
    }

    fn keys(&mut self) -> Vec<String> {
        self.config_keys()
    }
}

type Answer<T> = wasmtime::Result<Result<T, model::DriverError>>;

fn plan(answer: wasmtime::Result<Result<types::Plan, types::DriverError>>) -> Answer<model::Plan> {
    answer.map(|r| r.map(Adapt::adapt).map_err(Adapt::adapt))
}

/// Calls into an instance of a 0.1 component, in the model's types.
impl MechanismDriver {
    pub(super) fn describe_model(
        &self,
        store: &mut Store<CallState>,
    ) -> wasmtime::Result<model::Description> {
        self.neutrino_driver_driver()
            .call_describe(store)
            .map(Adapt::adapt)
    }

    pub(super) fn bind_port_model(
        &self,
        store: &mut Store<CallState>,
        ctx: &model::BindContext,
    ) -> Answer<model::BindDecision> {
        let ctx: types::BindContext = ctx.adapt();
        self.neutrino_driver_driver()
            .call_bind_port(store, &ctx)
            .map(|r| r.map(Adapt::adapt).map_err(Adapt::adapt))
    }

    pub(super) fn setup_network_model(
        &self,
        store: &mut Store<CallState>,
        ctx: &model::NetworkContext,
    ) -> Answer<model::Plan> {
        let ctx: types::NetworkContext = ctx.adapt();
        plan(
            self.neutrino_driver_driver()
                .call_setup_network(store, &ctx),
        )
    }

    pub(super) fn teardown_network_model(
        &self,
        store: &mut Store<CallState>,
        ctx: &model::NetworkContext,
    ) -> Answer<model::Plan> {
        let ctx: types::NetworkContext = ctx.adapt();
        plan(
            self.neutrino_driver_driver()
                .call_teardown_network(store, &ctx),
        )
    }

    pub(super) fn plug_port_model(
        &self,
        store: &mut Store<CallState>,
        ctx: &model::PortContext,
    ) -> Answer<model::Plan> {
        let ctx: types::PortContext = ctx.adapt();
        plan(self.neutrino_driver_driver().call_plug_port(store, &ctx))
    }

    pub(super) fn unplug_port_model(
        &self,
        store: &mut Store<CallState>,
        ctx: &model::PortContext,
    ) -> Answer<model::Plan> {
        let ctx: types::PortContext = ctx.adapt();
        plan(self.neutrino_driver_driver().call_unplug_port(store, &ctx))
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    /// The SHA-256 of `wit/since_v0.1.0/driver.wit`. A released contract never changes:
    /// components built against it are out there. A new contract version is a new
    /// `wit/since_v*/` directory and a new module beside this one, never an edit of this
    /// snapshot (nor of this constant).
    const SNAPSHOT_SHA256: &str =
        "8a8825cf2fb356ce61d9a5a478b939ecd96a41ccad80df1b2fe2469ec9124af9";

    #[test]
    fn the_released_snapshot_is_unchanged() {
        let text = include_bytes!("../../../../../wit/since_v0.1.0/driver.wit");
        assert_eq!(
            hex::encode(Sha256::digest(text)),
            SNAPSHOT_SHA256,
            "wit/since_v0.1.0/driver.wit was edited. A released contract never changes: put \
             the change in sdk/wit/driver.wit and, when it is released, in a new \
             wit/since_v*/ snapshot with its own adapter module"
        );
    }

    /// The development contract (`sdk/wit/driver.wit`, the only copy, inside the SDK crate so
    /// that drivers outside this repository build against it) may differ from a snapshot only
    /// under another version: while it declares `@0.1.0` it is that snapshot, byte for byte.
    /// An addition that keeps the released version would make drivers that a 0.1.0 host
    /// cannot serve.
    #[test]
    fn the_development_contract_is_the_snapshot_of_its_version() {
        let development = include_str!("../../../../../sdk/wit/driver.wit");
        let snapshot = include_str!("../../../../../wit/since_v0.1.0/driver.wit");
        let version = development
            .lines()
            .find_map(|l| l.trim().strip_prefix("package neutrino:driver@"))
            .and_then(|v| v.strip_suffix(';'))
            .expect("sdk/wit/driver.wit declares its package");
        if version == "0.1.0" {
            assert!(
                development == snapshot,
                "sdk/wit/driver.wit declares neutrino:driver@0.1.0 but differs from \
                 wit/since_v0.1.0/driver.wit: a change to the contract needs a new version"
            );
        } else {
            assert!(
                semver::Version::parse(version).unwrap() > semver::Version::new(0, 1, 0),
                "sdk/wit/driver.wit declares {version}, older than the released 0.1.0"
            );
        }
    }
}

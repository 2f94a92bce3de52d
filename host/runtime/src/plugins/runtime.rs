//! The engine, loading components, and calling them under limits.
//!
//! One engine for all drivers (pooling allocator, fuel, epoch interruption); each component is
//! compiled once (and cached precompiled on disk), checked, and kept as an `InstancePre`. A call
//! gets a fresh store and instance by default; a [`Session`] keeps one instance for several calls.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

use neutrino_model::{
    BindContext, BindDecision, Description, DriverError, NetworkContext, Plan, PortContext,
};

use super::adapters::{DriverInstance, DriverPre};
use super::contract;
use super::error::{CallError, LoadError, LoadFailure};
use super::grant::{Grant, GrantNarrowing, Owner, Scope, check_plan};
use super::host_state::{CallState, LogBudget, linker};
use super::limits::{EPOCH_TICK, Limits};
use super::metrics;
use super::validate;

/// The engine and linker shared by every driver.
pub struct Runtime {
    engine: Engine,
    linker: Linker<CallState>,
    limits: Limits,
    cache_dir: Option<PathBuf>,
    activity: Arc<Activity>,
}

/// What the operator says about one driver.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriverSettings {
    /// Read-only settings the driver sees through its `config` import.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Narrowing of what the driver declared it may touch.
    #[serde(default)]
    pub grant: GrantNarrowing,
}

impl Runtime {
    /// An engine with the given limits; `cache_dir` holds precompiled components.
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> anyhow::Result<Arc<Runtime>> {
        let mut pool = PoolingAllocationConfig::default();
        let n = limits.max_instances;
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .total_memories(n * 2)
            .total_tables(n * 8)
            .max_memory_size(limits.memory_bytes.max(1 << 20));
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let linker = linker(&engine).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let activity = Arc::new(Activity::default());
        spawn_epoch_ticker(&engine, activity.clone());
        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Arc::new(Runtime {
            engine,
            linker,
            limits,
            cache_dir,
            activity,
        }))
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Loads a component file.
    pub fn load_file(
        self: &Arc<Self>,
        path: &Path,
        settings: DriverSettings,
    ) -> Result<Driver, LoadError> {
        let source = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| LoadError {
            source_name: source.clone(),
            cause: e.into(),
        })?;
        self.load_bytes(&source, &bytes, settings)
    }

    /// Loads a component from memory; `source` names it in errors.
    pub fn load_bytes(
        self: &Arc<Self>,
        source: &str,
        bytes: &[u8],
        settings: DriverSettings,
    ) -> Result<Driver, LoadError> {
        let fail = |cause| LoadError {
            source_name: source.to_string(),
            cause,
        };
        let component = self
            .compile(bytes)
            .map_err(|e| fail(LoadFailure::NotAComponent(format!("{e:#}"))))?;
        let (contract, adapter) = self.check_contract(&component).map_err(fail)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(|pre| DriverPre::new(adapter, pre))
            .map_err(|e| fail(LoadFailure::Other(format!("cannot link: {e:#}"))))?;
        let mut driver = Driver {
            runtime: self.clone(),
            pre,
            name: Arc::from(source),
            source: source.to_string(),
            contract,
            config: Arc::new(settings.config),
            description: None,
            grant: Grant::default(),
            log_budget: Arc::new(LogBudget::new()),
        };
        let description = driver
            .session()
            .and_then(|mut s| s.describe())
            .map_err(|e| fail(LoadFailure::Describe(e)))?;
        validate::description(&description).map_err(|e| fail(LoadFailure::BadDescription(e)))?;
        driver.name = Arc::from(description.name.as_str());
        let declared = Grant::from(&description.capabilities);
        driver.grant = declared.narrowed(&settings.grant);
        let refused = declared.wildcards_not_granted(&driver.grant);
        if !refused.is_empty() {
            tracing::warn!(
                driver = %driver.name,
                "{source}: declares physical interfaces {refused:?}; a wildcard reaches every \
                 interface of the host, so it is granted only when the operator lists it \
                 (grant.physical_interfaces in the driver's settings)"
            );
        }
        driver.description = Some(description);
        Ok(driver)
    }

    /// Compiles, or loads the precompiled artefact from the cache.
    fn compile(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        let Some(dir) = &self.cache_dir else {
            return Component::new(&self.engine, bytes);
        };
        let mut compat = std::hash::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut compat);
        let key = format!(
            "{}-{:016x}.cwasm",
            hex::encode(Sha256::digest(bytes)),
            compat.finish()
        );
        let path = dir.join(key);
        if path.exists() {
            // SAFETY: the file was written by `serialize` below from these exact bytes for an
            // engine with the same compatibility hash, in a directory owned by this host.
            if let Ok(c) = unsafe { Component::deserialize_file(&self.engine, &path) } {
                return Ok(c);
            }
        }
        let component = Component::new(&self.engine, bytes)?;
        if let Ok(serialized) = component.serialize() {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, serialized).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
        Ok(component)
    }

    /// The exported contract version must be supported, and every import allowed. The version
    /// picks the adapter between the component's types and the model.
    fn check_contract(
        &self,
        component: &Component,
    ) -> Result<(semver::Version, contract::Adapter), LoadFailure> {
        let ty = component.component_type();
        let export = ty
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .find(|name| contract::split_versioned(name).0 == contract::DRIVER_INTERFACE)
            .ok_or_else(|| LoadFailure::MissingExport {
                interface: contract::DRIVER_INTERFACE.into(),
            })?;
        let found = contract::split_versioned(&export)
            .1
            .unwrap_or("(none)")
            .to_string();
        let (version, adapter) = semver::Version::parse(&found)
            .ok()
            .and_then(|v| contract::adapter_for(&v).map(|a| (v, a)))
            .ok_or_else(|| LoadFailure::UnsupportedVersion {
                found,
                supported: contract::SUPPORTED.into(),
            })?;
        let forbidden: Vec<String> = ty
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .filter(|name| !contract::import_allowed(name))
            .collect();
        if !forbidden.is_empty() {
            return Err(LoadFailure::ForbiddenImports(forbidden));
        }
        Ok((version, adapter))
    }
}

/// Driver instances alive: the epoch ticker runs only while there is one, so that an idle
/// host spends nothing on it (a tick a millisecond is a thousand wake-ups a second).
#[derive(Default)]
struct Activity {
    sessions: std::sync::Mutex<usize>,
    started: std::sync::Condvar,
}

/// Counts one session in [`Activity`] for as long as it lives.
struct Active(Arc<Activity>);

impl Active {
    fn start(activity: &Arc<Activity>) -> Active {
        *activity.sessions.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        activity.started.notify_all();
        Active(activity.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        *self.0.sessions.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
    }
}

/// How often an idle ticker looks whether its engine is gone.
const IDLE_LOOK: Duration = Duration::from_secs(1);

/// Advances the engine's epoch every tick while a session is alive, for as long as the engine
/// lives.
fn spawn_epoch_ticker(engine: &Engine, activity: Arc<Activity>) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("neutrino-epoch".into())
        .spawn(move || {
            loop {
                let mut sessions = activity.sessions.lock().unwrap_or_else(|e| e.into_inner());
                while *sessions == 0 {
                    if weak.upgrade().is_none() {
                        return;
                    }
                    sessions = activity
                        .started
                        .wait_timeout(sessions, IDLE_LOOK)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                drop(sessions);
                let Some(engine) = weak.upgrade() else {
                    return;
                };
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawn epoch ticker");
}

/// A loaded, checked driver component.
pub struct Driver {
    runtime: Arc<Runtime>,
    pre: DriverPre,
    name: Arc<str>,
    source: String,
    contract: semver::Version,
    config: Arc<BTreeMap<String, String>>,
    description: Option<Description>,
    grant: Grant,
    /// The log rate this driver's instances share.
    log_budget: Arc<LogBudget>,
}

impl Driver {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file (or bundled name) it was loaded from.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn contract_version(&self) -> &semver::Version {
        &self.contract
    }

    pub fn description(&self) -> &Description {
        self.description.as_ref().expect("described at load time")
    }

    /// The effective grant: what it declared, narrowed by the operator.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    /// A new instance for one or more calls.
    pub fn session(&self) -> Result<Session<'_>, CallError> {
        let active = Active::start(&self.runtime.activity);
        let limits = &self.runtime.limits;
        let mut store = Store::new(
            &self.runtime.engine,
            CallState::new(
                self.name.clone(),
                self.config.clone(),
                limits.memory_bytes,
                self.log_budget.clone(),
            ),
        );
        store.limiter(|s| s);
        arm(&mut store, limits)?;
        let instance =
            self.pre
                .instantiate(&mut store)
                .map_err(|e| match e.downcast_ref::<Trap>() {
                    // A start function that trapped is the driver's fault...
                    Some(_) => classify(e, &store, limits),
                    // ...anything else (pool exhausted, linking) is the host's.
                    None => CallError::Host(format!("{e:#}")),
                })?;
        Ok(Session {
            driver: self,
            store,
            bindings: instance,
            poisoned: false,
            _active: active,
        })
    }

    pub fn bind_port(&self, ctx: &BindContext) -> Result<BindDecision, CallError> {
        self.fresh_session("bind_port")?.bind_port(ctx)
    }

    pub fn setup_network(&self, ctx: &NetworkContext) -> Result<Plan, CallError> {
        self.fresh_session("setup_network")?.setup_network(ctx)
    }

    pub fn teardown_network(&self, ctx: &NetworkContext) -> Result<Plan, CallError> {
        self.fresh_session("teardown_network")?
            .teardown_network(ctx)
    }

    pub fn plug_port(&self, ctx: &PortContext) -> Result<Plan, CallError> {
        self.fresh_session("plug_port")?.plug_port(ctx)
    }

    pub fn unplug_port(&self, ctx: &PortContext) -> Result<Plan, CallError> {
        self.fresh_session("unplug_port")?.unplug_port(ctx)
    }

    /// A new instance for one call of `function`; an instance that cannot be made is that
    /// call's failure in the metrics.
    fn fresh_session(&self, function: &'static str) -> Result<Session<'_>, CallError> {
        self.session().inspect_err(|e| {
            metrics::call(&self.name, function, std::time::Duration::ZERO, 0, Some(e))
        })
    }
}

/// Fresh fuel and a fresh deadline for the next call.
fn arm(store: &mut Store<CallState>, limits: &Limits) -> Result<(), CallError> {
    store
        .set_fuel(limits.fuel)
        .map_err(|e| CallError::Host(format!("{e:#}")))?;
    store.set_epoch_deadline(limits.deadline_ticks());
    Ok(())
}

/// Turns a wasmtime error into the typed error of the call.
fn classify(err: wasmtime::Error, store: &Store<CallState>, limits: &Limits) -> CallError {
    if store.data().memory_cap_hit {
        return CallError::MemoryCap {
            limit_bytes: limits.memory_bytes,
        };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => CallError::OutOfFuel { fuel: limits.fuel },
        Some(Trap::Interrupt) => CallError::DeadlineExceeded {
            millis: limits.deadline.as_millis() as u64,
        },
        Some(trap) => CallError::Trap {
            trap: trap.to_string(),
            output: store.data().output(),
        },
        None => CallError::Trap {
            trap: format!("{err:#}"),
            output: store.data().output(),
        },
    }
}

/// One instance of a driver. After any failed call the instance is discarded: further calls on
/// this session fail, and a new session must be made.
pub struct Session<'d> {
    driver: &'d Driver,
    store: Store<CallState>,
    bindings: DriverInstance,
    poisoned: bool,
    /// Keeps the epoch ticking while the session lives.
    _active: Active,
}

impl Session<'_> {
    /// Runs one exported function (`function`, its name in the metrics) through `f`, which
    /// calls it and checks its answer, and records the call: its wall time, the fuel it
    /// consumed and, when it failed, the kind of failure.
    fn observed<R>(
        &mut self,
        function: &'static str,
        f: impl FnOnce(&mut Self) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        let armed = !self.poisoned;
        let started = Instant::now();
        let result = f(self);
        let elapsed = started.elapsed();
        let fuel = match self.store.get_fuel() {
            Ok(left) if armed => self.driver.runtime.limits.fuel.saturating_sub(left),
            _ => 0,
        };
        metrics::call(
            &self.driver.name,
            function,
            elapsed,
            fuel,
            result.as_ref().err(),
        );
        result
    }

    fn call<R>(
        &mut self,
        f: impl FnOnce(&DriverInstance, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        if self.poisoned {
            return Err(CallError::Host(
                "this instance failed earlier and was discarded".into(),
            ));
        }
        let limits = &self.driver.runtime.limits;
        arm(&mut self.store, limits)?;
        let result =
            f(&self.bindings, &mut self.store).map_err(|e| classify(e, &self.store, limits));
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    pub fn describe(&mut self) -> Result<Description, CallError> {
        self.observed("describe", |s| s.call(|b, s| b.describe(s)))
    }

    pub fn bind_port(&mut self, ctx: &BindContext) -> Result<BindDecision, CallError> {
        self.observed("bind_port", |s| {
            let decision = s.call(|b, s| b.bind_port(s, ctx))?.map_err(driver_error)?;
            validate::bind_decision(ctx, s.driver.description(), &decision)
                .map_err(CallError::Malformed)?;
            Ok(decision)
        })
    }

    pub fn setup_network(&mut self, ctx: &NetworkContext) -> Result<Plan, CallError> {
        self.observed("setup_network", |s| {
            let plan = s.call(|b, s| b.setup_network(s, ctx))?;
            s.checked(plan, network_scope(ctx))
        })
    }

    pub fn teardown_network(&mut self, ctx: &NetworkContext) -> Result<Plan, CallError> {
        self.observed("teardown_network", |s| {
            let plan = s.call(|b, s| b.teardown_network(s, ctx))?;
            s.checked(plan, network_scope(ctx))
        })
    }

    pub fn plug_port(&mut self, ctx: &PortContext) -> Result<Plan, CallError> {
        self.observed("plug_port", |s| {
            let plan = s.call(|b, s| b.plug_port(s, ctx))?;
            s.checked(plan, attachment_scope(ctx))
        })
    }

    pub fn unplug_port(&mut self, ctx: &PortContext) -> Result<Plan, CallError> {
        self.observed("unplug_port", |s| {
            let plan = s.call(|b, s| b.unplug_port(s, ctx))?;
            s.checked(plan, attachment_scope(ctx))
        })
    }

    /// A plan runs only when it is well-formed and entirely inside the grant.
    fn checked(&self, plan: Result<Plan, DriverError>, scope: Scope) -> Result<Plan, CallError> {
        let plan = plan.map_err(driver_error)?;
        validate::plan(&plan).map_err(CallError::Malformed)?;
        let violations = check_plan(&self.driver.grant, scope, &plan);
        if violations.is_empty() {
            Ok(plan)
        } else {
            Err(CallError::OutsideGrant(validate::summary(violations)))
        }
    }
}

/// The driver's own error, unless its message is past the bound: then a malformed answer.
fn driver_error(e: DriverError) -> CallError {
    match validate::driver_error(&e) {
        Ok(()) => CallError::Driver(e),
        Err(m) => CallError::Malformed(m),
    }
}

/// A network call owns the network's and its segment's devices.
fn network_scope(ctx: &NetworkContext) -> Scope<'_> {
    Scope {
        owner: Owner {
            port_id: None,
            network_id: Some(&ctx.network.id),
            segmentation_id: ctx.segment.segmentation_id,
        },
        mapped_interfaces: &ctx.agent.configurations.interface_mappings,
        mapped_bridges: &ctx.agent.configurations.bridge_mappings,
        ..Scope::NONE
    }
}

/// A port call owns the port's devices, and its network's.
fn attachment_scope(ctx: &PortContext) -> Scope<'_> {
    Scope {
        attachment_namespace: Some(&ctx.attachment.namespace),
        attachment_interface: Some(&ctx.attachment.interface_name),
        owner: Owner {
            port_id: Some(&ctx.port.id),
            network_id: Some(&ctx.network.id),
            segmentation_id: ctx.segment.segmentation_id,
        },
        mapped_interfaces: &ctx.agent.configurations.interface_mappings,
        mapped_bridges: &ctx.agent.configurations.bridge_mappings,
    }
}

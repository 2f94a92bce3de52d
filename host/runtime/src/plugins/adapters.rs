//! The contract versions this host runs, behind one interface in the model's types: a loaded
//! component is prepared and instantiated through the adapter its contract version picks
//! (`contract::adapter_for`). A new version is a new case in each enum here.

use neutrino_model::{
    BindContext, BindDecision, Description, DriverError, NetworkContext, Plan, PortContext,
};
use wasmtime::Store;
use wasmtime::component::{InstancePre, Linker};

use super::contract::Adapter;
use super::host_state::CallState;
use super::v0_1;

/// Adds the imports of every contract version to the linker (their names carry the version).
pub(super) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    v0_1::add_to_linker(linker)
}

/// A checked, linked component, ready to instantiate through its adapter.
pub(super) enum DriverPre {
    V0_1(v0_1::MechanismDriverPre<CallState>),
}

impl DriverPre {
    pub(super) fn new(adapter: Adapter, pre: InstancePre<CallState>) -> wasmtime::Result<Self> {
        match adapter {
            Adapter::V0_1 => v0_1::MechanismDriverPre::new(pre).map(DriverPre::V0_1),
        }
    }

    pub(super) fn instantiate(
        &self,
        store: &mut Store<CallState>,
    ) -> wasmtime::Result<DriverInstance> {
        match self {
            DriverPre::V0_1(pre) => pre.instantiate(store).map(DriverInstance::V0_1),
        }
    }
}

/// One instance of a component; its calls take and return model types.
pub(super) enum DriverInstance {
    V0_1(v0_1::MechanismDriver),
}

type Answer<T> = wasmtime::Result<Result<T, DriverError>>;

impl DriverInstance {
    pub(super) fn describe(&self, store: &mut Store<CallState>) -> wasmtime::Result<Description> {
        match self {
            DriverInstance::V0_1(b) => b.describe_model(store),
        }
    }

    pub(super) fn bind_port(
        &self,
        store: &mut Store<CallState>,
        ctx: &BindContext,
    ) -> Answer<BindDecision> {
        match self {
            DriverInstance::V0_1(b) => b.bind_port_model(store, ctx),
        }
    }

    pub(super) fn setup_network(
        &self,
        store: &mut Store<CallState>,
        ctx: &NetworkContext,
    ) -> Answer<Plan> {
        match self {
            DriverInstance::V0_1(b) => b.setup_network_model(store, ctx),
        }
    }

    pub(super) fn teardown_network(
        &self,
        store: &mut Store<CallState>,
        ctx: &NetworkContext,
    ) -> Answer<Plan> {
        match self {
            DriverInstance::V0_1(b) => b.teardown_network_model(store, ctx),
        }
    }

    pub(super) fn plug_port(
        &self,
        store: &mut Store<CallState>,
        ctx: &PortContext,
    ) -> Answer<Plan> {
        match self {
            DriverInstance::V0_1(b) => b.plug_port_model(store, ctx),
        }
    }

    pub(super) fn unplug_port(
        &self,
        store: &mut Store<CallState>,
        ctx: &PortContext,
    ) -> Answer<Plan> {
        match self {
            DriverInstance::V0_1(b) => b.unplug_port_model(store, ctx),
        }
    }
}

//! Neutrino's domain services, without HTTP: port and network lifecycle with their IPAM
//! decisions (`ports`, `networks`, `subnets`, `port_attributes`), DHCP scheduling, the port
//! writer (group commit of port creates), port binding, and server boots (`compute`). The API
//! parses and authorises a request, calls a service and renders its answer; the services hold
//! transactions only as `store::Tx`/`store::Conn` and answer Neutron's errors
//! ([`error::NeutronError`]) with the status as a number.

pub mod auto_allocate;
pub mod body;
pub mod bulk;
pub mod compute;
pub mod context;
pub mod dhcp_agent_scheduler;
pub mod dhcp_failover;
pub mod dhcp_scheduling;
pub mod error;
pub mod floating_ips;
pub mod l3_scheduling;
pub mod networks;
pub mod port_attributes;
pub mod port_binding;
pub mod port_policy;
pub mod port_writer;
pub mod ports;
pub mod quotas;
pub mod retry;
pub mod routers;
pub mod security_group_rules;
pub mod security_groups;
pub mod subnet_pools;
pub mod subnets;
pub mod tags;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::OnceCell;

pub use context::RequestContext;
use error::NeutronError;
use neutrino_runtime::binding::MechanismManager;
use neutrino_runtime::plugins::registry::{DriversConfig, Registry};
use neutrino_store::Store;
use neutrino_store::agents::Agent;

/// The settings the services read.
#[derive(Debug, Clone)]
pub struct Config {
    /// Type of networks created without provider attributes.
    pub tenant_network_type: String,
    /// VNIs handed to tenant VXLAN networks.
    pub vni_range: (i64, i64),
    /// MTU of the physical network; VXLAN networks get 50 less.
    pub global_physnet_mtu: i64,
    /// Neutron's `agent_down_time`: an agent whose last heartbeat is older is dead.
    pub agent_down_time: Duration,
    /// Neutron's `dhcp_agents_per_network`: how many DHCP agents serve each network.
    pub dhcp_agents_per_network: usize,
    /// The mechanism drivers ports are bound with.
    pub drivers: DriversConfig,
    /// A server not ACTIVE this long after its boot goes to ERROR.
    pub boot_timeout: Duration,
    /// Where ports' generated MACs come from (random; seeded in tests).
    pub mac_generator: neutrino_ipam::MacGenerator,
}

/// Agents' heartbeats this server holds and has not written yet: binding and scheduling read
/// agents through it, so that a heartbeat counts as soon as it arrives.
pub trait HeartbeatOverlay: Send + Sync {
    /// Applies the buffered heartbeats (and changed attributes) to rows read from the store.
    fn overlay(&self, rows: &mut [Agent]);
}

/// Whether other projects are using the server now (the API's fair share knows): a big bulk
/// of a project with company gives way between its slices.
pub trait Contention: Send + Sync {
    fn others_busy(&self, project: &str) -> bool;
}

/// No other project is ever busy (services without an API in front: tools, tests).
pub struct Alone;

impl Contention for Alone {
    fn others_busy(&self, _project: &str) -> bool {
        false
    }
}

/// What the services work with: the store, the settings, the agents' buffered heartbeats, the
/// mechanism manager, the change-feed signal and the port writer.
#[derive(Clone)]
pub struct Services {
    pub store: Store,
    pub config: Arc<Config>,
    pub heartbeats: Arc<dyn HeartbeatOverlay>,
    /// Loaded on first use (compiling drivers takes a moment; many requests never bind).
    pub mechanism: Arc<OnceCell<Arc<MechanismManager>>>,
    /// Wakes agents' long polls after a commit that recorded change-feed entries.
    pub feed: Arc<neutrino_store::feed::FeedSignal>,
    /// Started on first use, in the server's runtime.
    port_writer: Arc<OnceLock<port_writer::PortWriter>>,
    /// Whether other projects are busy (set by the API to its fair share).
    pub contention: Arc<dyn Contention>,
}

impl Services {
    pub fn new(store: Store, config: Config, heartbeats: Arc<dyn HeartbeatOverlay>) -> Services {
        Services {
            store,
            config: Arc::new(config),
            heartbeats,
            mechanism: Arc::new(OnceCell::new()),
            feed: Arc::new(neutrino_store::feed::FeedSignal::default()),
            port_writer: Arc::new(OnceLock::new()),
            contention: Arc::new(Alone),
        }
    }

    /// The task that group-commits port creates.
    pub fn port_writer(&self) -> &port_writer::PortWriter {
        self.port_writer
            .get_or_init(|| port_writer::PortWriter::start(self.clone()))
    }

    /// Loads and checks every configured driver now (the server's start), so that a refused
    /// one stops the start with its file and reason rather than failing each bind later.
    pub async fn load_drivers(&self) -> anyhow::Result<()> {
        let drivers = self.config.drivers.clone();
        let manager = tokio::task::spawn_blocking(move || {
            let registry = Registry::load(&drivers)?;
            anyhow::Ok(Arc::new(MechanismManager::new(registry.drivers().to_vec())))
        })
        .await??;
        // A manager loaded meanwhile by a first bind is as good as this one.
        let _ = self.mechanism.set(manager);
        Ok(())
    }

    /// The mechanism manager, loading the configured drivers the first time.
    pub async fn mechanism_manager(&self) -> Result<Arc<MechanismManager>, NeutronError> {
        let drivers = self.config.drivers.clone();
        self.mechanism
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || {
                    let registry = Registry::load(&drivers)?;
                    anyhow::Ok(Arc::new(MechanismManager::new(registry.drivers().to_vec())))
                })
                .await
                .map_err(|e| NeutronError::internal(format!("loading drivers: {e}")))?
                .map_err(|e| NeutronError::internal(format!("loading drivers: {e:#}")))
            })
            .await
            .cloned()
    }
}

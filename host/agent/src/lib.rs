//! The node agent: it reports heartbeats, watches the server's change feed for its own host,
//! computes plans with the same driver components the server binds with, applies them to the
//! kernel, serves DHCP for the networks given to it, and reports ports and instances up.

pub mod backends;
pub mod client;
pub mod config;
pub mod dhcp;
pub mod drift;
pub mod engine;
pub mod executor;
pub mod firewall;
pub mod forwarding;
pub mod instances;
pub mod l3;
pub mod local_vlans;
pub mod one_per_namespace;
pub mod report;
pub mod stale;
pub mod wiring;

/// The wire types the agent speaks with the server.
pub use neutrino_proto as protocol;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use tokio::sync::{Notify, mpsc};
use tokio_util::task::AbortOnDropHandle;

use client::ServerClient;
use config::{DHCP_AGENT_TYPE, L3_AGENT_TYPE, NodeConfig};
use engine::Engine;
use executor::{Executor, ExecutorConfig};
use local_vlans::LocalVlans;
use neutrino_runtime::plugins::registry::Registry;
use protocol::HostChanges;
use report::ReportedAgent;
use wiring::Wiring;

#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The server's URL, e.g. `http://controller:9696`.
    pub server: String,
    /// This host's name, as ports' `binding:host_id` names it.
    pub host: String,
    /// The agents' shared secret.
    pub token: String,
    /// Local VLANs, DHCP files, the DHCP client script.
    pub state_dir: PathBuf,
    pub config: NodeConfig,
}

/// The server's default `--agent-down-time` (Neutron's `agent_down_time`), in seconds.
const NEUTRON_AGENT_DOWN_TIME: u64 = 75;
/// How often dead dnsmasq processes are looked for.
const SUPERVISE_INTERVAL: Duration = Duration::from_secs(2);
/// How often the plugged ports' devices on the host and their OVS ports are compared with
/// the plans that made them (a removed link is noticed at once, by its netlink event; a link
/// set down or detached from its bridge by this check). Links inside namespaces are compared
/// at each full resync.
const DRIFT_INTERVAL: Duration = Duration::from_secs(10);
/// How long after a link's removal the check waits, so that one removal's burst of events
/// (a bridge and its ports) is one check.
const DRIFT_SETTLE: Duration = Duration::from_millis(20);
/// When the drift check looks again after a link removal.
const DRIFT_FOLLOW_UP: Duration = Duration::from_secs(1);

/// Runs the agent until the task is dropped.
pub async fn run(options: AgentOptions) -> anyhow::Result<()> {
    run_with_ready(options, || {}).await
}

/// [`run`], calling `ready` once, when the server has taken the agent's first reports (its
/// agents are then known and alive, so boots can be placed on this host).
pub async fn run_with_ready(
    options: AgentOptions,
    ready: impl FnOnce() + Send + 'static,
) -> anyhow::Result<()> {
    let _claim = one_per_namespace::claim(&options.host)?;
    let settings = options.config.agent.clone();
    if settings.report_interval.saturating_mul(2) > NEUTRON_AGENT_DOWN_TIME {
        tracing::warn!(
            "report_interval {} s is more than half of the default agent_down_time              ({NEUTRON_AGENT_DOWN_TIME} s): unless the server's --agent-down-time is at least              twice it, this host's agents will flap between alive and dead",
            settings.report_interval
        );
    }
    std::fs::create_dir_all(&options.state_dir)
        .with_context(|| format!("agent state directory {}", options.state_dir.display()))?;
    let drivers_config = options.config.drivers.clone();
    let registry = tokio::task::spawn_blocking(move || Registry::load(&drivers_config))
        .await
        .context("loading drivers")??;
    let registry = Arc::new(registry);
    let driver_names: Vec<String> = registry
        .drivers()
        .iter()
        .map(|d| d.name().to_string())
        .collect();
    let wanted_types: BTreeSet<String> = registry
        .drivers()
        .iter()
        .map(|d| d.description().agent_type.clone())
        .collect();
    // Only the types whose backend answers are reported (and wired): the server then binds
    // ports with a driver this host can plug. A type left out stays out until the agent is
    // restarted, and says why in the log and in every report's configurations.
    let (agent_types, unavailable) =
        backends::available(&wanted_types, settings.ovs_db.as_deref()).await;
    for (agent_type, why) in &unavailable {
        tracing::warn!(
            "host {}: not reporting the {agent_type:?} type, its backend does not answer ({why}); \
             ports go to another driver. Restart the agent once it answers.",
            options.host
        );
    }
    let driver_agents: HashMap<String, _> = agent_types
        .iter()
        .map(|t| {
            let agent = settings.as_driver_agent(&options.host, t, &driver_names);
            (t.clone(), agent)
        })
        .collect();
    let executor = Executor::new(ExecutorConfig {
        ovs_db: settings.ovs_db.clone(),
    });
    let local_vlans = LocalVlans::open(options.state_dir.join("local-vlans.json"))?;
    let wiring = Wiring::new(
        options.host.clone(),
        executor,
        registry.clone(),
        driver_agents,
        local_vlans,
    );
    let dhcp = match settings.dhcp {
        true => Some(crate::dhcp::DhcpManager::new(
            options.state_dir.clone(),
            Default::default(),
        )?),
        false => None,
    };
    let dhcp_client = crate::dhcp::client::DhcpClient::new(&options.state_dir)?;
    let client = ServerClient::new(&options.server, &options.host, &options.token)?;
    let integration_bridge = agent_types
        .contains(backends::OVS_AGENT_TYPE)
        .then(|| settings.integration_bridge.clone());
    let mut engine = Engine::new(
        client.clone(),
        wiring,
        dhcp,
        dhcp_client,
        Duration::from_secs(settings.lease_timeout),
        integration_bridge,
        (settings.firewall_driver == config::FirewallDriver::IptablesHybrid)
            .then(firewall::Firewall::new),
    );
    if settings.l3 {
        engine = engine.with_routers();
    }

    let mut configurations = settings.configurations(&driver_names);
    if !unavailable.is_empty() {
        configurations.insert("unavailable_agent_types".into(), json!(unavailable));
    }
    let mut reported: Vec<ReportedAgent> = agent_types
        .iter()
        .map(|t| ReportedAgent {
            agent_type: t.clone(),
            binary: "neutrino-agent".into(),
            topic: "N/A".into(),
            configurations: configurations.clone(),
        })
        .collect();
    if settings.dhcp {
        reported.push(ReportedAgent {
            agent_type: DHCP_AGENT_TYPE.into(),
            binary: "neutrino-dhcp-agent".into(),
            topic: "dhcp_agent".into(),
            configurations: {
                let mut c =
                    serde_json::Map::from_iter([("dhcp_driver".to_string(), json!("dnsmasq"))]);
                if !unavailable.is_empty() {
                    c.insert("unavailable_agent_types".into(), json!(unavailable));
                }
                c
            },
        });
    }
    if settings.l3 {
        // Legacy routers only (no DVR, no HA), each in a `qrouter-` namespace of this host.
        reported.push(ReportedAgent {
            agent_type: L3_AGENT_TYPE.into(),
            binary: "neutrino-l3-agent".into(),
            topic: "l3_agent".into(),
            configurations: serde_json::Map::from_iter([
                ("agent_mode".to_string(), json!("legacy")),
                ("handle_internal_only_routers".to_string(), json!(true)),
                ("interface_driver".to_string(), json!("neutrino")),
            ]),
        });
    }
    let resync = Arc::new(Notify::new());
    let heartbeats = tokio::spawn(report::heartbeat_loop(
        client.clone(),
        reported,
        settings.report_interval(),
        resync.clone(),
        ready,
    ));
    let _stop_heartbeats = AbortOnDropHandle::new(heartbeats);

    let (changes_tx, mut changes_rx) = mpsc::channel::<HostChanges>(4);
    let poller = tokio::spawn(poll_loop(
        client,
        changes_tx,
        resync.clone(),
        Duration::from_secs(settings.resync_interval.max(1)),
    ));
    let _stop_poller = AbortOnDropHandle::new(poller);
    let mut supervise = tokio::time::interval(SUPERVISE_INTERVAL);
    let link_removed = Arc::new(Notify::new());
    let watcher = tokio::spawn(watch_link_removals(link_removed.clone()));
    let _stop_watcher = AbortOnDropHandle::new(watcher);
    let mut drift_check = tokio::time::interval(DRIFT_INTERVAL);
    drift_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(
        "agent for host {} with drivers {driver_names:?} watching {}",
        options.host,
        options.server
    );
    loop {
        tokio::select! {
            changes = changes_rx.recv() => match changes {
                Some(changes) => engine.apply(changes).await,
                None => anyhow::bail!("the change feed poller stopped"),
            },
            _ = supervise.tick() => engine.supervise().await,
            _ = link_removed.notified() => {
                tokio::time::sleep(DRIFT_SETTLE).await;
                engine.check_wiring(false).await;
                // A second look soon after, not in DRIFT_INTERVAL: the event can come before
                // the removal shows in a dump, or while the device is still being torn down.
                drift_check.reset_after(DRIFT_FOLLOW_UP);
            }
            _ = drift_check.tick() => engine.check_wiring(false).await,
        }
    }
}

/// Wakes `removed` at every link removed in the host namespace (rtnetlink's link events), so
/// that a device deleted by hand is rebuilt at once rather than at the next check.
async fn watch_link_removals(removed: Arc<Notify>) {
    use futures_util::StreamExt;
    use rtnetlink::packet_core::NetlinkPayload;
    use rtnetlink::packet_route::RouteNetlinkMessage;
    let (connection, _handle, mut messages) =
        match rtnetlink::new_multicast_connection(&[rtnetlink::MulticastGroup::Link]) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(
                    "cannot watch link events ({e}): drift is found by the periodic check only"
                );
                return;
            }
        };
    let _connection = AbortOnDropHandle::new(tokio::spawn(connection));
    while let Some((message, _)) = messages.next().await {
        if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(_)) = message.payload {
            removed.notify_one();
        }
    }
    tracing::warn!("the link event stream ended: drift is found by the periodic check only");
}

/// Long-polls the feed and hands every answer with news to the engine. A full resync (after=0)
/// happens at start, every `resync_interval`, and when a heartbeat was answered `revived`.
async fn poll_loop(
    client: ServerClient,
    tx: mpsc::Sender<HostChanges>,
    resync: Arc<Notify>,
    resync_interval: Duration,
) {
    let mut revision = 0;
    let mut last_full = tokio::time::Instant::now();
    loop {
        let full_due = last_full.elapsed() >= resync_interval;
        if full_due {
            revision = 0;
        }
        let poll = tokio::select! {
            answer = client.changes(revision) => answer,
            _ = resync.notified() => { revision = 0; continue; }
        };
        match poll {
            Ok(changes) => {
                if changes.full {
                    last_full = tokio::time::Instant::now();
                }
                let news = changes.has_news();
                revision = changes.revision;
                if news && tx.send(changes).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!("change feed: {e:#}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// This machine's host name, the default `--host` (what Nova would put in `binding:host_id`).
pub fn local_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The agent changes the kernel: it needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for namespaces).
pub fn can_run_here() -> bool {
    // The effective uid, from /proc (no libc call needed).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

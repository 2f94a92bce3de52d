//! Port binding for the services: the port and network in the drivers' terms, the agents on the
//! host, and the mechanism manager's answer written back into the port.

use neutrino_store as store;
use std::time::SystemTime;

use neutrino_model as model;
use serde_json::Value;

use crate::Services;
use crate::error::{CoreResult, NeutronError};
use neutrino_runtime::binding::{BindingOutcome, SegmentHost};
use neutrino_store::dynamic_segments::DynamicSegment;
use neutrino_store::networks::Network;
use neutrino_store::ports::Port;

/// Neutron's `MAX_BIND_TRIES`: how often a binding made outside the write transaction is made
/// again because the port or its network changed meanwhile.
pub const MAX_BIND_TRIES: usize = 10;

/// Dynamic VLANs the host issues come from this range (what no network holds of it).
pub const DYNAMIC_VLAN_RANGE: (i64, i64) = (1000, 2999);

/// Binds (or unbinds, with no host) `port` inside the caller's transaction, setting its
/// `binding:vif_type`, `binding:vif_details`, the stored decisions and the dynamic segments its
/// binding uses. The drivers run against a snapshot (agents and dynamic segments read outside
/// `conn`); the ports the API creates and updates are bound after their commit instead
/// ([`bind_committed`]), so a slow driver holds no write transaction.
pub async fn bind(
    state: &Services,
    port: &mut Port,
    network: &Network,
    conn: &mut store::Conn,
) -> CoreResult<()> {
    if port.binding_host.is_empty() {
        unbind(port);
        metrics::counter!(BINDINGS, "outcome" => "unbound", "driver" => "").increment(1);
        neutrino_store::dynamic_segments::forget_port(conn, &port.id).await?;
        return Ok(());
    }
    for _ in 0..MAX_BIND_TRIES {
        let decision = decide(state, port, network).await?;
        if record(conn, port, network, &decision).await? {
            return Ok(());
        }
    }
    fail_changing(conn, port, network).await
}

/// Leaves the port unbound, to be bound after its transaction commits ([`bind_committed`]).
pub fn defer(port: &mut Port) {
    unbind(port);
}

fn unbind(port: &mut Port) {
    port.binding_vif_type = "unbound".into();
    port.binding_vif_details = "{}".into();
    port.binding_result = None;
}

/// Binds a committed port outside any write transaction: the decision is made from a snapshot
/// of the port, its network and the host's agents, then written in a short transaction if the
/// port and network are still what the drivers saw; otherwise it is made again (at most
/// [`MAX_BIND_TRIES`] times, then the port is `binding_failed` with that reason). Answers the
/// port as written; None if it was deleted meanwhile.
pub async fn bind_committed(state: &Services, port_id: &str) -> CoreResult<Option<Port>> {
    bind_after_commit(state, port_id, None).await
}

/// Whether a port waits for its binding: it has a host but no binding attempt's result
/// (written by [`defer`], not bound since).
pub fn pending(port: &Port) -> bool {
    !port.binding_host.is_empty() && port.binding_vif_type == "unbound"
}

/// [`bind_committed`]; with `pending_before` (a stored time), only a port still [`pending`]
/// that has not changed since then: a sweep's binding never redoes one made meanwhile.
async fn bind_after_commit(
    state: &Services,
    port_id: &str,
    pending_before: Option<&str>,
) -> CoreResult<Option<Port>> {
    let waits = |p: &Port| pending_before.is_none_or(|t| pending(p) && p.updated_at.as_str() <= t);
    for _ in 0..MAX_BIND_TRIES {
        let mut conn = state.store.read_conn().await?;
        let Some(snapshot) = neutrino_store::ports::get(&mut conn, port_id).await? else {
            return Ok(None);
        };
        let Some(network) = neutrino_store::networks::get(&mut *conn, &snapshot.network_id).await?
        else {
            return Ok(None);
        };
        drop(conn);
        if snapshot.binding_host.is_empty() || !waits(&snapshot) {
            return Ok(Some(snapshot));
        }
        let decision = decide(state, &snapshot, &network).await?;
        let mut tx = state.store.begin_write().await?;
        let Some(mut port) = neutrino_store::ports::get(&mut tx, port_id).await? else {
            return Ok(None);
        };
        let Some(fresh) = neutrino_store::networks::get(&mut *tx, &port.network_id).await? else {
            return Ok(None);
        };
        // Bound meanwhile by another (the pending sweep, another server sharing the database):
        // that binding stands; deciding again would only bump the revision twice.
        if !waits(&port)
            || (pending(&snapshot) && !pending(&port) && port.binding_host == snapshot.binding_host)
        {
            store::rollback(tx).await?;
            return Ok(Some(port));
        }
        // Re-checked: what the drivers saw is still the port and network.
        if port_of(&port) != port_of(&snapshot) || network_of(&fresh) != network_of(&network) {
            store::rollback(tx).await?;
            continue;
        }
        if !record(&mut tx, &mut port, &fresh, &decision).await? {
            store::rollback(tx).await?;
            continue;
        }
        // A change of the port like any other: clients and the agents' feed compare revisions.
        port.updated_at = store::now();
        port.revision_number += 1;
        neutrino_store::ports::update(&mut tx, &port).await?;
        let revision = neutrino_store::dhcp_hosting::record_port(
            &mut tx,
            &port.network_id,
            &port.id,
            &[&port.binding_host],
        )
        .await?;
        store::commit(tx).await?;
        state.feed.committed(revision);
        // In the request's span (its id): what the agent logs when it plugs this revision.
        tracing::info!(
            port = %port.id,
            revision = port.revision_number,
            host = %port.binding_host,
            vif_type = %port.binding_vif_type,
            "port binding written"
        );
        return Ok(Some(port));
    }
    let mut tx = state.store.begin_write().await?;
    let Some(mut port) = neutrino_store::ports::get(&mut tx, port_id).await? else {
        return Ok(None);
    };
    let Some(network) = neutrino_store::networks::get(&mut *tx, &port.network_id).await? else {
        return Ok(None);
    };
    fail_changing(&mut tx, &mut port, &network).await?;
    port.updated_at = store::now();
    port.revision_number += 1;
    neutrino_store::ports::update(&mut tx, &port).await?;
    store::commit(tx).await?;
    Ok(Some(port))
}

/// How often the sweep of [`spawn_pending_sweep`] runs, and how long a port must have waited
/// for its binding before the sweep binds it (the request that wrote it binds it well within).
pub const PENDING_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// Binds the ports left waiting for their binding ([`pending`]) since `before` (a stored
/// time): a server stopped or killed between a port's commit and its binding leaves it so.
/// Answers how many it bound (or failed, with the reason: a binding attempt's result).
pub async fn bind_pending(state: &Services, before: &str) -> CoreResult<usize> {
    let mut done = 0;
    let mut after = String::new();
    loop {
        let mut conn = state.store.read_conn().await?;
        let ids = neutrino_store::ports::binding_pending(&mut conn, &after, 100).await?;
        drop(conn);
        let Some(last) = ids.last() else {
            return Ok(done);
        };
        after = last.clone();
        for id in &ids {
            if let Some(port) = bind_after_commit(state, id, Some(before)).await?
                && !pending(&port)
            {
                tracing::info!(port = %id, vif_type = %port.binding_vif_type,
                    "bound a port left waiting for its binding");
                done += 1;
            }
        }
    }
}

/// At start, binds every port left waiting for its binding (a server killed between a port's
/// commit and its binding), then every [`PENDING_SWEEP_INTERVAL`] those waiting longer than
/// that (another server sharing the database died).
pub fn spawn_pending_sweep(state: Services) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PENDING_SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first = true;
        loop {
            tick.tick().await;
            let before = if first {
                store::now()
            } else {
                store::ago(PENDING_SWEEP_INTERVAL)
            };
            first = false;
            if let Err(e) = bind_pending(&state, &before).await {
                tracing::warn!(
                    "binding the ports left waiting for their binding: {}",
                    e.message
                );
            }
        }
    });
}

/// The drivers' answer for a port, and whether the host's agents filter ports (its
/// `port_filter`), both read from the same snapshot of the host's agents.
struct Decision {
    result: neutrino_runtime::binding::BindingResult,
    filtered: bool,
}

/// The mechanism manager's answer for `port` on `network`, from a snapshot: the agents on the
/// host and the network's dynamic segments, read outside any write transaction; the drivers
/// run on a blocking thread.
async fn decide(state: &Services, port: &Port, network: &Network) -> CoreResult<Decision> {
    let manager = state.mechanism_manager().await?;
    let mut conn = state.store.read_conn().await?;
    let mut agents = neutrino_store::agents::on_host(&mut *conn, &port.binding_host).await?;
    let existing = neutrino_store::dynamic_segments::on_network(&mut conn, &network.id).await?;
    drop(conn);
    state.heartbeats.overlay(&mut agents);
    // Filtered or not is the host's to say, whatever a driver claims: its agent filters every
    // port it plugs (all through a Linux bridge port) when it reports a firewall.
    let filtered = agents.iter().any(|a| {
        a.configurations
            .get("firewall_driver")
            .and_then(Value::as_str)
            .is_some_and(|d| d != "noop")
    });
    let now = SystemTime::now();
    let agents: Vec<model::Agent> = agents
        .iter()
        .map(|a| a.to_binding(now, state.config.agent_down_time))
        .collect();
    let (wit_port, wit_network) = (port_of(port), network_of(network));
    let mut segments = StoreSegments {
        store: state.store.clone(),
        runtime: tokio::runtime::Handle::current(),
        network_id: network.id.clone(),
        mtu: wit_network.mtu,
        vni_range: state.config.vni_range,
        existing: existing.iter().filter_map(segment_of).collect(),
    };
    // Driver calls are synchronous; they run on a blocking thread so a slow or misbehaving
    // driver never stalls the async workers. The binding's total work is capped by the manager.
    // The drivers' calls and log lines stay in the caller's span (the request's, with its
    // id) and go to the caller's subscriber, on the blocking thread too.
    let span = tracing::Span::current();
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let result = tokio::task::spawn_blocking(move || {
        tracing::dispatcher::with_default(&dispatch, || {
            span.in_scope(|| manager.bind_with(&wit_port, &wit_network, &agents, &mut segments))
        })
    })
    .await
    .map_err(|e| NeutronError::internal(format!("binding task failed: {e}")))?;
    Ok(Decision { result, filtered })
}

/// Writes `result` into `port` and records the dynamic segments it uses; false (nothing
/// written) when another binding took one of them meanwhile.
async fn record(
    conn: &mut store::Conn,
    port: &mut Port,
    network: &Network,
    decision: &Decision,
) -> CoreResult<bool> {
    let result = &decision.result;
    let used: Vec<DynamicSegment> = result
        .dynamic_segments
        .iter()
        .map(|s| DynamicSegment {
            id: s.id.clone(),
            network_id: network.id.clone(),
            network_type: model::network_type_name(s.network_type).to_string(),
            physical_network: s.physical_network.clone().unwrap_or_default(),
            segmentation_id: s.segmentation_id.map(i64::from).unwrap_or_default(),
            mtu: i64::from(s.mtu),
        })
        .collect();
    if !neutrino_store::dynamic_segments::record_binding(conn, &port.id, &network.id, &used).await?
    {
        return Ok(false);
    }
    outcome_metric(result);
    port.binding_vif_type = result.vif_type().to_string();
    port.binding_vif_details = match &result.outcome {
        BindingOutcome::Bound { vif_details, .. } => {
            let mut details = vif_details.clone();
            details.insert("port_filter".into(), Value::Bool(decision.filtered));
            Value::Object(details).to_string()
        }
        _ => "{}".into(),
    };
    port.binding_result = Some(serde_json::to_string(result).map_err(NeutronError::internal)?);
    Ok(true)
}

/// `binding_failed`: the port or its dynamic segments kept changing while it was bound.
async fn fail_changing(
    conn: &mut store::Conn,
    port: &mut Port,
    network: &Network,
) -> CoreResult<()> {
    let reason = format!(
        "port {} or network {} changed {MAX_BIND_TRIES} times while the port was being bound",
        port.id, network.id
    );
    let result = neutrino_runtime::binding::BindingResult {
        host: port.binding_host.clone(),
        outcome: BindingOutcome::Failed { reason },
        decisions: Vec::new(),
        dynamic_segments: Vec::new(),
        work: None,
    };
    neutrino_store::dynamic_segments::forget_port(conn, &port.id).await?;
    outcome_metric(&result);
    port.binding_vif_type = result.vif_type().to_string();
    port.binding_vif_details = "{}".into();
    port.binding_result = Some(serde_json::to_string(&result).map_err(NeutronError::internal)?);
    Ok(())
}

/// Counter: bindings written, labels `outcome` (`bound`, `binding_failed`, `unbound`) and
/// `driver` (the driver of the bottom bound level; empty unless bound).
pub const BINDINGS: &str = "neutrino_port_bindings_total";

fn outcome_metric(result: &neutrino_runtime::binding::BindingResult) {
    let (outcome, driver) = match &result.outcome {
        BindingOutcome::Bound { levels, .. } => (
            "bound",
            levels.last().map(|l| l.driver.clone()).unwrap_or_default(),
        ),
        BindingOutcome::Failed { .. } => ("binding_failed", String::new()),
        BindingOutcome::Unbound => ("unbound", String::new()),
    };
    metrics::counter!(BINDINGS, "outcome" => outcome, "driver" => driver).increment(1);
}

/// The host's dynamic segments for one binding: those the network has (the snapshot), and new
/// ones proposed from the lowest free segmentation id, which [`record`] claims with the binding.
struct StoreSegments {
    store: store::Store,
    runtime: tokio::runtime::Handle,
    network_id: String,
    mtu: u32,
    vni_range: (i64, i64),
    existing: Vec<model::Segment>,
}

impl SegmentHost for StoreSegments {
    fn existing(&self) -> Vec<model::Segment> {
        self.existing.clone()
    }

    fn allocate(
        &mut self,
        network_type: model::NetworkType,
        physical_network: Option<&str>,
    ) -> Result<model::Segment, String> {
        let range = match network_type {
            model::NetworkType::Vlan if physical_network.is_some() => DYNAMIC_VLAN_RANGE,
            model::NetworkType::Vlan => {
                return Err("a VLAN segment needs a physical network".into());
            }
            model::NetworkType::Vxlan if physical_network.is_none() => self.vni_range,
            model::NetworkType::Vxlan => {
                return Err("a VXLAN segment has no physical network".into());
            }
            other => {
                return Err(format!(
                    "the host issues no dynamic {} segments",
                    model::network_type_name(other)
                ));
            }
        };
        let type_name = model::network_type_name(network_type);
        let physnet = physical_network.unwrap_or("");
        // Called on the binding's blocking thread: one read, outside any transaction.
        let free = self.runtime.block_on(async {
            let mut conn = self.store.read_conn().await?;
            neutrino_store::dynamic_segments::lowest_free(&mut conn, type_name, physnet, range)
                .await
        });
        let id = match free {
            Ok(Some(id)) => id,
            Ok(None) => return Err(format!("no free {type_name} id on {physnet:?}")),
            Err(e) => return Err(format!("reading free {type_name} ids: {e}")),
        };
        let segment = model::Segment {
            id: store::new_id(),
            network_type,
            physical_network: physical_network.map(str::to_string),
            segmentation_id: u32::try_from(id).ok(),
            mtu: self.mtu,
        };
        tracing::debug!(network = %self.network_id, "proposing dynamic segment {segment:?}");
        Ok(segment)
    }
}

fn segment_of(d: &DynamicSegment) -> Option<model::Segment> {
    Some(model::Segment {
        id: d.id.clone(),
        network_type: model::network_type_named(&d.network_type)?,
        physical_network: (!d.physical_network.is_empty()).then(|| d.physical_network.clone()),
        segmentation_id: u32::try_from(d.segmentation_id).ok(),
        mtu: u32::try_from(d.mtu).unwrap_or(1500),
    })
}

fn port_of(p: &Port) -> model::Port {
    let profile: serde_json::Map<String, Value> =
        serde_json::from_str(&p.binding_profile).unwrap_or_default();
    model::Port {
        id: p.id.clone(),
        network_id: p.network_id.clone(),
        name: p.name.clone(),
        mac_address: p.mac_address.clone(),
        fixed_ips: driver_fixed_ips(&p.fixed_ips),
        vnic_type: model::vnic_type_named(&p.binding_vnic_type).unwrap_or(model::VnicType::Normal),
        binding_host: p.binding_host.clone(),
        binding_profile: model::json_pairs(&profile),
        device_owner: p.device_owner.clone(),
        device_id: p.device_id.clone(),
        admin_state_up: p.admin_state_up,
    }
}

/// The network with its one segment (the provider attributes); the segment's id is the
/// network's.
pub fn network_of(n: &Network) -> model::Network {
    let mtu = u32::try_from(n.mtu).unwrap_or(1500);
    let segments = model::network_type_named(&n.network_type)
        .map(|network_type| model::Segment {
            id: n.id.clone(),
            network_type,
            physical_network: n.physical_network.clone(),
            segmentation_id: n.segmentation_id.and_then(|s| u32::try_from(s).ok()),
            mtu,
        })
        .into_iter()
        .collect();
    model::Network {
        id: n.id.clone(),
        name: n.name.clone(),
        project_id: n.project_id.clone(),
        mtu,
        admin_state_up: n.admin_state_up,
        shared: n.shared,
        external: n.external,
        segments,
    }
}

/// A port's addresses in the drivers' terms.
pub fn driver_fixed_ips(ips: &[neutrino_store::ports::FixedIp]) -> Vec<model::FixedIp> {
    ips.iter()
        .map(|f| model::FixedIp {
            subnet_id: f.subnet_id.clone(),
            ip_address: f.ip_address.clone(),
        })
        .collect()
}

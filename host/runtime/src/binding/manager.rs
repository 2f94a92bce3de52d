use std::sync::Arc;
use std::time::{Duration, Instant};

use neutrino_model::{
    Agent, BindContext, BindDecision, BindingLevel, Network, NetworkType, Port, Segment,
};
use serde::{Deserialize, Serialize};

use crate::plugins::Driver;

/// Neutron's `MAX_BINDING_LEVELS`.
pub const MAX_BINDING_LEVELS: u8 = 10;

/// What one driver said at one level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverDecision {
    pub level: u8,
    pub driver: String,
    #[serde(flatten)]
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Verdict {
    Bound {
        segment_id: String,
        vif_type: String,
    },
    ContinueWith {
        segment_id: String,
        next_segments: Vec<String>,
    },
    Pass {
        reason: String,
    },
    /// The call failed (driver error, trap, limits, malformed answer); the next driver is tried.
    Error {
        reason: String,
    },
    /// The manager did not ask this driver (loop guard, level limit).
    Skipped {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum BindingOutcome {
    /// No host: nothing to bind.
    Unbound,
    Bound {
        vif_type: String,
        vif_details: serde_json::Map<String, serde_json::Value>,
        levels: Vec<BindingLevel>,
        /// The bottom bound segment.
        segment: Segment,
    },
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindingResult {
    pub host: String,
    #[serde(flatten)]
    pub outcome: BindingOutcome,
    /// Every decision, in the order drivers were asked.
    pub decisions: Vec<DriverDecision>,
    /// The dynamic segments the bound levels use (not the network's own): what the host
    /// issued for this binding, which it records and releases when no port uses them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dynamic_segments: Vec<Segment>,
    /// What the binding cost: decisions asked, deepest level, time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work: Option<BindingWork>,
}

/// The work of one binding, against its [`BindingLimits`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingWork {
    pub decisions: u32,
    pub levels: u8,
    pub elapsed_ms: u64,
    /// The limit that stopped the binding, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
}

/// Caps on the work of one binding, so that drivers continuing with segments cannot explore
/// N^levels calls: past any of them the binding stops and fails with that reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingLimits {
    /// Driver calls over all levels.
    pub max_decisions: u32,
    /// Levels (Neutron's `MAX_BINDING_LEVELS`).
    pub max_levels: u8,
    /// Wall time of the whole binding (each call also has the runtime's own deadline).
    pub max_time: Duration,
}

impl Default for BindingLimits {
    fn default() -> Self {
        BindingLimits {
            max_decisions: 64,
            max_levels: MAX_BINDING_LEVELS,
            max_time: Duration::from_secs(2),
        }
    }
}

/// Where the segments a driver continues with come from: the network's own segments, the
/// dynamic segments the host already issued to this network, or new ones the host issues
/// (Neutron's `allocate_dynamic_segment`). A driver never makes a segment up.
pub trait SegmentHost {
    /// The dynamic segments the network already has.
    fn existing(&self) -> Vec<Segment>;
    /// A new dynamic segment of `network_type` on `physical_network` for the network, its
    /// segmentation id chosen by the host from the type's range; Err with the reason when the
    /// host cannot issue one.
    fn allocate(
        &mut self,
        network_type: NetworkType,
        physical_network: Option<&str>,
    ) -> Result<Segment, String>;
}

/// A [`SegmentHost`] in memory: ids `dynamic-<n>`, segmentation ids from fixed ranges (VLAN
/// 1000-2999, VXLAN from 10000), skipping the network's own. For tests, the kit and callers
/// with no store.
#[derive(Debug, Default, Clone)]
pub struct MemorySegments {
    pub segments: Vec<Segment>,
    mtu: u32,
    network_segments: Vec<Segment>,
}

impl MemorySegments {
    pub fn for_network(network: &Network) -> MemorySegments {
        MemorySegments {
            segments: Vec::new(),
            mtu: network.mtu,
            network_segments: network.segments.clone(),
        }
    }
}

impl SegmentHost for MemorySegments {
    fn existing(&self) -> Vec<Segment> {
        self.segments.clone()
    }

    fn allocate(
        &mut self,
        network_type: NetworkType,
        physical_network: Option<&str>,
    ) -> Result<Segment, String> {
        let (low, high) = dynamic_range(network_type)
            .ok_or_else(|| format!("no range of {network_type:?} segments to issue from"))?;
        let taken = |id: u32| {
            self.segments.iter().chain(&self.network_segments).any(|s| {
                s.network_type == network_type
                    && s.physical_network.as_deref() == physical_network
                    && s.segmentation_id == Some(id)
            })
        };
        let id = (low..=high)
            .find(|id| !taken(*id))
            .ok_or_else(|| format!("no free {network_type:?} segment"))?;
        let segment = Segment {
            id: format!("dynamic-{}", self.segments.len() + 1),
            network_type,
            physical_network: physical_network.map(str::to_string),
            segmentation_id: Some(id),
            mtu: self.mtu,
        };
        self.segments.push(segment.clone());
        Ok(segment)
    }
}

/// The in-memory ranges of [`MemorySegments`].
fn dynamic_range(t: NetworkType) -> Option<(u32, u32)> {
    match t {
        NetworkType::Vlan => Some((1000, 2999)),
        NetworkType::Vxlan => Some((10000, 19999)),
        _ => None,
    }
}

impl BindingResult {
    /// The result as a port stores it (`binding_result`), or None if it is not one.
    pub fn from_stored(text: &str) -> Option<BindingResult> {
        serde_json::from_str(text).ok()
    }

    /// `binding:vif_type` as the API shows it.
    pub fn vif_type(&self) -> &str {
        match &self.outcome {
            BindingOutcome::Unbound => "unbound",
            BindingOutcome::Failed { .. } => "binding_failed",
            BindingOutcome::Bound { vif_type, .. } => vif_type,
        }
    }
}

/// Drivers in binding order.
pub struct MechanismManager {
    drivers: Vec<Arc<Driver>>,
    limits: BindingLimits,
}

struct Request<'a> {
    port: &'a Port,
    network: &'a Network,
    host: &'a str,
    agents: &'a [Agent],
}

/// The state of one binding as it goes down the levels.
struct Walk<'a> {
    levels: Vec<BindingLevel>,
    decisions: Vec<DriverDecision>,
    /// Every segment the host knows for this network: its own, then the dynamic ones.
    known: Vec<Segment>,
    segments: &'a mut dyn SegmentHost,
    started: Instant,
    deepest: u8,
    stopped_by: Option<String>,
}

struct Found {
    segment_id: String,
    vif_type: String,
    vif_details: Vec<(String, String)>,
    segments: Vec<Segment>,
}

impl MechanismManager {
    pub fn new(drivers: Vec<Arc<Driver>>) -> Self {
        MechanismManager {
            drivers,
            limits: BindingLimits::default(),
        }
    }

    /// The same drivers with other caps on one binding's work.
    pub fn with_limits(mut self, limits: BindingLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> &BindingLimits {
        &self.limits
    }

    pub fn drivers(&self) -> &[Arc<Driver>] {
        &self.drivers
    }

    /// Binds `port` (on `port.binding_host`) given every agent registered on that host, their
    /// liveness already computed; dynamic segments come from memory ([`MemorySegments`]).
    pub fn bind(&self, port: &Port, network: &Network, agents: &[Agent]) -> BindingResult {
        let mut segments = MemorySegments::for_network(network);
        self.bind_with(port, network, agents, &mut segments)
    }

    /// [`MechanismManager::bind`] with the dynamic segments of `segments`.
    pub fn bind_with(
        &self,
        port: &Port,
        network: &Network,
        agents: &[Agent],
        segments: &mut dyn SegmentHost,
    ) -> BindingResult {
        let host = port.binding_host.clone();
        let unbound = |outcome| BindingResult {
            host: host.clone(),
            outcome,
            decisions: Vec::new(),
            dynamic_segments: Vec::new(),
            work: None,
        };
        if host.is_empty() {
            return unbound(BindingOutcome::Unbound);
        }
        if network.segments.is_empty() {
            let reason = format!("network {} has no segments", network.id);
            return unbound(BindingOutcome::Failed { reason });
        }
        let req = Request {
            port,
            network,
            host: &host,
            agents,
        };
        let mut known = network.segments.clone();
        known.extend(segments.existing());
        let mut walk = Walk {
            levels: Vec::new(),
            decisions: Vec::new(),
            known,
            segments,
            started: Instant::now(),
            deepest: 0,
            stopped_by: None,
        };
        let found = self.bind_level(&req, 0, &network.segments, &mut walk);
        let work = BindingWork {
            decisions: walk.decisions.len() as u32,
            levels: walk.deepest,
            elapsed_ms: walk.started.elapsed().as_millis() as u64,
            stopped_by: walk.stopped_by.clone(),
        };
        let mut dynamic_segments = Vec::new();
        let outcome = match found {
            Some(found) => {
                let segment = found
                    .segments
                    .iter()
                    .find(|s| s.id == found.segment_id)
                    .cloned()
                    .expect("validated: the bound segment was offered");
                for level in &walk.levels {
                    let own = network.segments.iter().any(|s| s.id == level.segment_id);
                    let dynamic = walk.known.iter().find(|s| s.id == level.segment_id);
                    if let (false, Some(s)) = (own, dynamic)
                        && !dynamic_segments.contains(s)
                    {
                        dynamic_segments.push(s.clone());
                    }
                }
                BindingOutcome::Bound {
                    vif_type: found.vif_type,
                    vif_details: found
                        .vif_details
                        .into_iter()
                        .map(|(k, v)| (k, serde_json::from_str(&v).expect("validated JSON")))
                        .collect(),
                    levels: walk.levels,
                    segment,
                }
            }
            None => BindingOutcome::Failed {
                reason: failure_summary(port, &host, &walk.decisions, walk.stopped_by.as_deref()),
            },
        };
        BindingResult {
            host,
            outcome,
            decisions: walk.decisions,
            dynamic_segments,
            work: Some(work),
        }
    }

    /// Why the binding must stop before asking another driver, if it must.
    fn over_limit(&self, walk: &Walk) -> Option<String> {
        if walk.decisions.len() as u64 >= u64::from(self.limits.max_decisions) {
            return Some(format!(
                "binding work limit reached: {} decisions (at most {})",
                walk.decisions.len(),
                self.limits.max_decisions
            ));
        }
        let elapsed = walk.started.elapsed();
        if elapsed >= self.limits.max_time {
            return Some(format!(
                "binding time limit reached: {} ms (at most {} ms)",
                elapsed.as_millis(),
                self.limits.max_time.as_millis()
            ));
        }
        None
    }

    fn bind_level(
        &self,
        req: &Request,
        level: u8,
        segments: &[Segment],
        walk: &mut Walk,
    ) -> Option<Found> {
        let max_levels = self.limits.max_levels.min(MAX_BINDING_LEVELS);
        if level >= max_levels {
            walk.decisions.push(DriverDecision {
                level,
                driver: String::new(),
                verdict: Verdict::Skipped {
                    reason: format!("binding level limit ({max_levels}) reached"),
                },
            });
            return None;
        }
        walk.deepest = walk.deepest.max(level + 1);
        for driver in &self.drivers {
            if walk.stopped_by.is_some() {
                return None;
            }
            let name = driver.name().to_string();
            let record = |verdict| DriverDecision {
                level,
                driver: name.clone(),
                verdict,
            };
            if let Some(reason) = self.over_limit(walk) {
                walk.decisions.push(record(Verdict::Skipped {
                    reason: reason.clone(),
                }));
                walk.stopped_by = Some(reason);
                return None;
            }
            // Loop guard: a driver never binds again a segment it bound at a higher level.
            if walk
                .levels
                .iter()
                .any(|l| l.driver == name && segments.iter().any(|s| s.id == l.segment_id))
            {
                walk.decisions.push(record(Verdict::Skipped {
                    reason: "already bound one of these segments above".into(),
                }));
                continue;
            }
            let ctx = BindContext {
                port: req.port.clone(),
                network: req.network.clone(),
                host: req.host.to_string(),
                level,
                segments_to_bind: segments.to_vec(),
                upper_levels: walk.levels.clone(),
                agents: req.agents.to_vec(),
            };
            match driver.bind_port(&ctx) {
                Ok(BindDecision::Bound(b)) => {
                    walk.decisions.push(record(Verdict::Bound {
                        segment_id: b.segment_id.clone(),
                        vif_type: b.vif_type.clone(),
                    }));
                    walk.levels.push(BindingLevel {
                        level,
                        driver: name,
                        segment_id: b.segment_id.clone(),
                    });
                    return Some(Found {
                        segment_id: b.segment_id,
                        vif_type: b.vif_type,
                        vif_details: b.vif_details,
                        segments: segments.to_vec(),
                    });
                }
                Ok(BindDecision::ContinueWith(c)) => {
                    let next = match resolve_next(
                        req.network,
                        &c.next_segments,
                        &mut walk.known,
                        &mut *walk.segments,
                    ) {
                        Ok(next) => next,
                        Err(reason) => {
                            let reason = format!("malformed answer: {reason}");
                            tracing::warn!(driver = %name, port = %req.port.id, "bind-port: {reason}");
                            walk.decisions.push(record(Verdict::Error { reason }));
                            continue;
                        }
                    };
                    walk.decisions.push(record(Verdict::ContinueWith {
                        segment_id: c.segment_id.clone(),
                        next_segments: next.iter().map(|s| s.id.clone()).collect(),
                    }));
                    walk.levels.push(BindingLevel {
                        level,
                        driver: name,
                        segment_id: c.segment_id,
                    });
                    if let Some(found) = self.bind_level(req, level + 1, &next, walk) {
                        return Some(found);
                    }
                    walk.levels.pop();
                }
                Ok(BindDecision::Pass(reason)) => {
                    walk.decisions.push(record(Verdict::Pass { reason }))
                }
                Err(e) => {
                    tracing::warn!(driver = %name, port = %req.port.id, "bind-port failed: {e}");
                    walk.decisions.push(record(Verdict::Error {
                        reason: e.to_string(),
                    }));
                }
            }
        }
        None
    }
}

/// The host's segments for what a driver continues with. A segment the host knows (the
/// network's own or a dynamic one it issued to this network) is taken by id, and must agree
/// with the host's record; an unknown id with no segmentation id asks for a dynamic segment
/// of that type and physical network (the one the network has, or a new one the host
/// issues); an unknown id with a segmentation id must name a segment the host issued to this
/// network. Anything else is refused: a driver never makes a segment up.
/// [`resolve_next`] for one continue-with answer on its own (the conformance kit): the host's
/// segments for `next`, or why the answer is malformed.
pub fn check_next_segments(
    network: &Network,
    next: &[Segment],
    segments: &mut dyn SegmentHost,
) -> Result<Vec<Segment>, String> {
    let mut known = network.segments.clone();
    known.extend(segments.existing());
    resolve_next(network, next, &mut known, segments)
}

fn resolve_next(
    network: &Network,
    next: &[Segment],
    known: &mut Vec<Segment>,
    segments: &mut dyn SegmentHost,
) -> Result<Vec<Segment>, String> {
    let mut resolved: Vec<Segment> = Vec::with_capacity(next.len());
    let same_place = |a: &Segment, b: &Segment| {
        a.network_type == b.network_type && a.physical_network == b.physical_network
    };
    for s in next {
        let segment = if let Some(known) = known.iter().find(|k| k.id == s.id) {
            if !same_place(known, s)
                || s.segmentation_id
                    .is_some_and(|id| Some(id) != known.segmentation_id)
            {
                return Err(format!(
                    "continue-with segment {:?} does not match the host's segment of that id",
                    s.id
                ));
            }
            known.clone()
        } else if let Some(id) = s.segmentation_id {
            known
                .iter()
                .find(|k| same_place(k, s) && k.segmentation_id == Some(id))
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "continue-with segment {:?}: segmentation id {id} ({}{}) was not \
                         allocated to network {}",
                        s.id,
                        neutrino_model::network_type_name(s.network_type),
                        s.physical_network
                            .as_deref()
                            .map(|p| format!(" on {p}"))
                            .unwrap_or_default(),
                        network.id
                    )
                })?
        } else {
            let dynamic = known
                .iter()
                .skip(network.segments.len())
                .find(|k| same_place(k, s))
                .cloned();
            match dynamic {
                Some(d) => d,
                None => {
                    let issued = segments
                        .allocate(s.network_type, s.physical_network.as_deref())
                        .map_err(|e| format!("no dynamic segment for {:?}: {e}", s.id))?;
                    known.push(issued.clone());
                    issued
                }
            }
        };
        if !resolved.iter().any(|r| r.id == segment.id) {
            resolved.push(segment);
        }
    }
    Ok(resolved)
}

/// One line a user can act on: every driver's reason at the top level.
fn failure_summary(
    port: &Port,
    host: &str,
    decisions: &[DriverDecision],
    stopped_by: Option<&str>,
) -> String {
    let reasons: Vec<String> = decisions
        .iter()
        .filter(|d| d.level == 0)
        .map(|d| match &d.verdict {
            Verdict::Pass { reason } | Verdict::Error { reason } | Verdict::Skipped { reason } => {
                format!("{}: {reason}", d.driver)
            }
            Verdict::ContinueWith { .. } => {
                format!("{}: no driver could bind the next level", d.driver)
            }
            Verdict::Bound { .. } => format!("{}: bound", d.driver),
        })
        .collect();
    let stopped = stopped_by.map(|s| format!(" ({s})")).unwrap_or_default();
    if reasons.is_empty() {
        return format!(
            "no mechanism driver is configured to bind port {} on host {host}",
            port.id
        );
    }
    format!(
        "failed to bind port {} on host {host} for vnic_type {}: {}{stopped}",
        port.id,
        neutrino_model::vnic_type_name(port.vnic_type),
        reasons.join("; ")
    )
}

use std::sync::Arc;

use neutrino_model::{Agent, BindContext, BindDecision, BindingLevel, Network, Port, Segment};
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
}

struct Request<'a> {
    port: &'a Port,
    network: &'a Network,
    host: &'a str,
    agents: &'a [Agent],
}

struct Found {
    segment_id: String,
    vif_type: String,
    vif_details: Vec<(String, String)>,
    segments: Vec<Segment>,
}

impl MechanismManager {
    pub fn new(drivers: Vec<Arc<Driver>>) -> Self {
        MechanismManager { drivers }
    }

    pub fn drivers(&self) -> &[Arc<Driver>] {
        &self.drivers
    }

    /// Binds `port` (on `port.binding_host`) given every agent registered on that host, their
    /// liveness already computed.
    pub fn bind(&self, port: &Port, network: &Network, agents: &[Agent]) -> BindingResult {
        let host = port.binding_host.clone();
        let mut decisions = Vec::new();
        if host.is_empty() {
            return BindingResult {
                host,
                outcome: BindingOutcome::Unbound,
                decisions,
            };
        }
        if network.segments.is_empty() {
            let reason = format!("network {} has no segments", network.id);
            return BindingResult {
                host,
                outcome: BindingOutcome::Failed { reason },
                decisions,
            };
        }
        let req = Request {
            port,
            network,
            host: &host,
            agents,
        };
        let mut levels = Vec::new();
        let outcome = match self.bind_level(&req, 0, &network.segments, &mut levels, &mut decisions)
        {
            Some(found) => {
                let segment = found
                    .segments
                    .iter()
                    .find(|s| s.id == found.segment_id)
                    .cloned()
                    .expect("validated: the bound segment was offered");
                BindingOutcome::Bound {
                    vif_type: found.vif_type,
                    vif_details: found
                        .vif_details
                        .into_iter()
                        .map(|(k, v)| (k, serde_json::from_str(&v).expect("validated JSON")))
                        .collect(),
                    levels,
                    segment,
                }
            }
            None => BindingOutcome::Failed {
                reason: failure_summary(port, &host, &decisions),
            },
        };
        BindingResult {
            host,
            outcome,
            decisions,
        }
    }

    fn bind_level(
        &self,
        req: &Request,
        level: u8,
        segments: &[Segment],
        levels: &mut Vec<BindingLevel>,
        decisions: &mut Vec<DriverDecision>,
    ) -> Option<Found> {
        if level >= MAX_BINDING_LEVELS {
            decisions.push(DriverDecision {
                level,
                driver: String::new(),
                verdict: Verdict::Skipped {
                    reason: format!("binding level limit ({MAX_BINDING_LEVELS}) reached"),
                },
            });
            return None;
        }
        for driver in &self.drivers {
            let name = driver.name().to_string();
            let record = |verdict| DriverDecision {
                level,
                driver: name.clone(),
                verdict,
            };
            // Loop guard: a driver never binds again a segment it bound at a higher level.
            if levels
                .iter()
                .any(|l| l.driver == name && segments.iter().any(|s| s.id == l.segment_id))
            {
                decisions.push(record(Verdict::Skipped {
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
                upper_levels: levels.clone(),
                agents: req.agents.to_vec(),
            };
            match driver.bind_port(&ctx) {
                Ok(BindDecision::Bound(b)) => {
                    decisions.push(record(Verdict::Bound {
                        segment_id: b.segment_id.clone(),
                        vif_type: b.vif_type.clone(),
                    }));
                    levels.push(BindingLevel {
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
                    decisions.push(record(Verdict::ContinueWith {
                        segment_id: c.segment_id.clone(),
                        next_segments: c.next_segments.iter().map(|s| s.id.clone()).collect(),
                    }));
                    levels.push(BindingLevel {
                        level,
                        driver: name,
                        segment_id: c.segment_id,
                    });
                    if let Some(found) =
                        self.bind_level(req, level + 1, &c.next_segments, levels, decisions)
                    {
                        return Some(found);
                    }
                    levels.pop();
                }
                Ok(BindDecision::Pass(reason)) => decisions.push(record(Verdict::Pass { reason })),
                Err(e) => {
                    tracing::warn!(driver = %name, port = %req.port.id, "bind-port failed: {e}");
                    decisions.push(record(Verdict::Error {
                        reason: e.to_string(),
                    }));
                }
            }
        }
        None
    }
}

/// One line a user can act on: every driver's reason at the top level.
fn failure_summary(port: &Port, host: &str, decisions: &[DriverDecision]) -> String {
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
    if reasons.is_empty() {
        return format!(
            "no mechanism driver is configured to bind port {} on host {host}",
            port.id
        );
    }
    format!(
        "failed to bind port {} on host {host} for vnic_type {}: {}",
        port.id,
        neutrino_model::vnic_type_name(port.vnic_type),
        reasons.join("; ")
    )
}

//! Heartbeats: every `report_interval`, jittered so that thousands of agents started together
//! do not report together (neutron.md 6.1), one report per agent type this node runs.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;

use super::client::ServerClient;

/// One agent this node reports as (an L2 agent type per driver family, and the DHCP agent).
#[derive(Debug, Clone)]
pub struct ReportedAgent {
    pub agent_type: String,
    pub binary: String,
    pub topic: String,
    pub configurations: serde_json::Map<String, Value>,
}

/// Reports forever; `ready` is called after the first round the server took. `revived` from the server (it thought us dead) asks for a full resync, as
/// Neutron's agents do, through `resync`.
pub async fn heartbeat_loop(
    client: ServerClient,
    agents: Vec<ReportedAgent>,
    interval: Duration,
    resync: std::sync::Arc<Notify>,
    ready: impl FnOnce() + Send + 'static,
) {
    let mut start_flag = true;
    let mut ready = Some(ready);
    loop {
        let mut all_reported = true;
        for agent in &agents {
            let body = json!({
                "agent_type": agent.agent_type,
                "binary": agent.binary,
                "topic": agent.topic,
                "host": client.host(),
                "configurations": agent.configurations,
                "start_flag": start_flag,
            });
            match client.report(&body).await {
                Ok(outcome) if outcome == "revived" => {
                    tracing::warn!("{}: the server had us dead; resyncing", agent.agent_type);
                    resync.notify_one();
                }
                Ok(_) => {}
                Err(e) => {
                    all_reported = false;
                    tracing::warn!("{} heartbeat failed: {e:#}", agent.agent_type);
                }
            }
        }
        if all_reported && let Some(ready) = ready.take() {
            ready();
        }
        // After a failed first report the next one is a start again.
        start_flag = !all_reported && start_flag;
        tokio::time::sleep(jittered(interval)).await;
    }
}

/// `interval` ±10 %, from the system's random source.
pub fn jittered(interval: Duration) -> Duration {
    let mut bytes = [0u8; 2];
    let r = getrandom::fill(&mut bytes).map_or(0.5, |()| {
        f64::from(u16::from_le_bytes(bytes)) / f64::from(u16::MAX)
    });
    interval.mul_f64(0.9 + 0.2 * r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent_and_varies() {
        let base = Duration::from_secs(30);
        let samples: Vec<Duration> = (0..64).map(|_| jittered(base)).collect();
        assert!(
            samples
                .iter()
                .all(|d| *d >= base.mul_f64(0.9) && *d <= base.mul_f64(1.1))
        );
        assert!(samples.iter().any(|d| *d != samples[0]), "not random");
    }
}

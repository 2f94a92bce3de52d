//! Where a server goes: a host with an alive, admin-up L2 agent of a type one of the configured
//! mechanism drivers binds with, least loaded (fewest servers) first, ties broken by host name.

use std::collections::BTreeSet;
use std::time::SystemTime;

use crate::Services;
use crate::error::CoreResult;
use neutrino_store::{agents, servers};

/// Nova's fault when the scheduler finds nothing.
pub const NO_VALID_HOST: &str = "No valid host was found.";

/// The host for a new server, or None when no host qualifies. `forced`: only that host is
/// considered (`availability_zone: "nova:<host>"`), and only if it qualifies too.
pub async fn pick_host(state: &Services, forced: Option<&str>) -> CoreResult<Option<String>> {
    let manager = state.mechanism_manager().await?;
    let agent_types: Vec<String> = manager
        .drivers()
        .iter()
        .map(|d| d.description().agent_type.clone())
        .collect();
    let mut rows = agents::list(&state.store.read).await?;
    state.heartbeats.overlay(&mut rows);
    let now = SystemTime::now();
    let hosts: BTreeSet<String> = rows
        .into_iter()
        .filter(|a| {
            a.admin_state_up
                && agent_types.contains(&a.agent_type)
                && a.alive(now, state.config.agent_down_time)
                && forced.is_none_or(|h| h == a.host)
        })
        .map(|a| a.host)
        .collect();
    let hosts: Vec<String> = hosts.into_iter().collect();
    let load = servers::load_on(&state.store.read, &hosts).await?;
    Ok(least_loaded(hosts, |h| load.get(h).copied().unwrap_or(0)))
}

/// The host with the fewest servers; among equals, the first by name.
fn least_loaded(hosts: Vec<String>, load: impl Fn(&str) -> i64) -> Option<String> {
    hosts.into_iter().min_by(|a, b| {
        load(a)
            .cmp(&load(b))
            .then_with(|| a.as_str().cmp(b.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fewest_servers_then_name() {
        let hosts = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let load = |h: &str| match h {
            "a" => 2,
            "b" => 1,
            "c" => 1,
            _ => 0,
        };
        assert_eq!(
            least_loaded(hosts(&["a", "c", "b"]), load).as_deref(),
            Some("b")
        );
        assert_eq!(least_loaded(hosts(&["a", "d"]), load).as_deref(), Some("d"));
        assert_eq!(least_loaded(hosts(&[]), load), None);
    }
}

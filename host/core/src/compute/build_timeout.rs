//! The boot timeout: once a second, servers still in BUILD past their deadline go to ERROR with
//! what they were waiting for, and their ports are released. Servers sharing PostgreSQL may all
//! sweep: each server is taken under its lock and failed only if still in BUILD, so exactly one
//! of them does it.

use neutrino_store as store;
use std::time::Duration;

use chrono::Utc;

use super::nics::{self, FeedEntries};
use crate::Services;
use crate::error::CoreResult;
use neutrino_store::agents::stored_time;
use neutrino_store::servers as repo;

/// Starts the sweep in the current runtime.
pub fn spawn(state: Services) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = sweep(&state).await {
                tracing::warn!("boot timeout sweep: {e}");
            }
        }
    });
}

/// Fails every boot past its deadline; returns how many this call failed.
pub async fn sweep(state: &Services) -> CoreResult<usize> {
    let overdue = repo::building_past(&state.store.read, &stored_time(Utc::now())).await?;
    let mut failed = 0;
    for id in overdue {
        let mut tx = state.store.begin_write().await?;
        nics::lock_server(state, &mut tx, &id).await?;
        let Some(server) = repo::get(&mut tx, &id).await? else {
            continue;
        };
        let waiting: Vec<String> = repo::nic_states(&mut tx, &id)
            .await?
            .iter()
            .filter_map(repo::NicState::waiting_for)
            .collect();
        let fault = format!(
            "Build timed out: not ACTIVE within {} s on {} (waiting for {})",
            state.config.boot_timeout.as_secs_f64(),
            server.host,
            if waiting.is_empty() {
                "nothing: it was ready at the deadline".to_string()
            } else {
                waiting.join("; ")
            }
        );
        if !repo::fail_build(&mut tx, &id, &fault).await? {
            continue;
        }
        let mut feed = FeedEntries::default();
        nics::release(state, &mut tx, &server, &mut feed).await?;
        let revision = feed.record(&mut tx).await?;
        store::commit(tx).await?;
        state.feed.committed(revision);
        tracing::warn!("server {id}: {fault}");
        failed += 1;
    }
    Ok(failed)
}

//! An agent's report on its instances ([`InstanceStatusReport`]): which addresses their DHCP
//! clients hold, or that it gave up on one. A server becomes ACTIVE when every NIC holds one
//! of its port's fixed IPs and every port is ACTIVE (`store::servers::refresh_status` checks
//! the same when the ports' status arrives later); one given up on goes to ERROR and its ports
//! are released.

use neutrino_store as store;

use super::nics::{self, FeedEntries};
use crate::Services;
use crate::error::CoreResult;
use neutrino_proto::InstanceStatusReport;
use neutrino_store::servers as repo;

/// Applies the report of `host`'s agent (the caller authenticated it and checked the report's
/// addresses) in one transaction.
pub async fn apply(state: &Services, host: &str, report: &InstanceStatusReport) -> CoreResult<()> {
    let mut tx = state.store.begin_write().await?;
    let mut feed = FeedEntries::default();
    for instance in &report.instances {
        nics::lock_server(state, &mut tx, &instance.id).await?;
        // An agent speaks only for its own host; a server deleted meanwhile is no error.
        let Some(server) = repo::get(&mut tx, &instance.id)
            .await?
            .filter(|s| s.host == host)
        else {
            tracing::debug!("{host} reported on {}, not one of its servers", instance.id);
            continue;
        };
        if let Some(error) = &instance.error {
            let fault = format!("The agent on {host} gave up on the instance: {error}");
            if repo::fail_build(&mut tx, &server.id, &fault).await? {
                nics::release(state, &mut tx, &server, &mut feed).await?;
            }
            continue;
        }
        for lease in &instance.nics {
            repo::set_lease(
                &mut tx,
                &server.id,
                &lease.port_id,
                lease.leased_ip.as_deref(),
            )
            .await?;
        }
        repo::activate_if_ready(&mut tx, &server.id).await?;
    }
    let revision = feed.record(&mut tx).await?;
    store::commit(tx).await?;
    state.feed.committed(revision);
    Ok(())
}

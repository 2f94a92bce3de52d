//! Which networks a boot gets when it names none, as Nova decides (microversion 2.37):
//! `networks: "none"` gets no NIC; `"auto"` the one network available to the project, or the
//! project's auto-allocated topology when there is none; an empty list the one network
//! available (none: no NIC). More than one available network is ambiguous (409).

use crate::auto_allocate;
use crate::compute::nics::NicRequest;
use crate::error::{CoreResult, NeutronError};
use crate::{RequestContext, Services};
use neutrino_store::auto_allocated;

/// The `networks` of a boot request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestedNetworks {
    /// A list; empty means "the one available network, if any".
    Listed(Vec<NicRequest>),
    Auto,
    None,
}

fn ambiguous() -> NeutronError {
    NeutronError::conflict(
        "NetworkAmbiguous",
        "Multiple possible networks found, use a Network ID to be more specific.",
    )
}

fn unable(project_id: &str) -> NeutronError {
    NeutronError::bad(
        "UnableToAutoAllocateNetwork",
        format!("Unable to automatically allocate a network for project {project_id}"),
    )
}

/// The NICs the boot asks for, with "auto" and an empty list resolved.
pub async fn resolve(
    state: &Services,
    ctx: &RequestContext,
    requested: &RequestedNetworks,
) -> CoreResult<Vec<NicRequest>> {
    let auto = match requested {
        RequestedNetworks::None => return Ok(Vec::new()),
        RequestedNetworks::Listed(nics) if !nics.is_empty() => return Ok(nics.clone()),
        RequestedNetworks::Listed(_) => false,
        RequestedNetworks::Auto => true,
    };
    let available = {
        let mut conn = state.store.read_conn().await?;
        auto_allocated::available_networks(&mut conn, &ctx.project_id, auto, 2).await?
    };
    let network_id = match available.as_slice() {
        [one] => one.clone(),
        [] if !auto => return Ok(Vec::new()),
        [] => {
            // Nova checks first (the dry run), then asks for the topology.
            auto_allocate::dry_run(state)
                .await
                .map_err(|_| unable(&ctx.project_id))?;
            auto_allocate::get_or_create(state, ctx, &ctx.project_id)
                .await
                .map_err(|e| {
                    tracing::warn!(
                        "auto-allocation for {}: {}: {}",
                        ctx.project_id,
                        e.kind,
                        e.message
                    );
                    unable(&ctx.project_id)
                })?
        }
        _ => return Err(ambiguous()),
    };
    Ok(vec![NicRequest::Network {
        network_id,
        fixed_ip: None,
    }])
}

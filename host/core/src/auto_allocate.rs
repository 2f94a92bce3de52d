//! The auto-allocated topology ("get me a network", Neutron's `AutoAllocatedTopologyMixin`):
//! one call gives a project a private network with a subnet from each default subnet pool,
//! joined by a router to the default external network. The first call builds it, later calls
//! answer it; concurrent first calls agree on one (the table's primary key decides, the loser
//! removes what it made); a failure half-way removes what was made.

use serde_json::{Map, Value, json};

use crate::error::{CoreResult, NeutronError};
use crate::{RequestContext, Services, quotas, routers};
use neutrino_store::auto_allocated::{self, Topology};
use neutrino_store::{self as store, subnet_pools};

const NETWORK_NAME: &str = "auto_allocated_network";
const ROUTER_NAME: &str = "auto_allocated_router";

fn failure(reason: &str) -> NeutronError {
    NeutronError::conflict(
        "AutoAllocationFailure",
        format!("Deployment error: {reason}"),
    )
}

/// What the topology is made from: the default external network and the default pools.
struct Prerequisites {
    external_network: String,
    /// (IP version, pool id), IPv4 first.
    pools: Vec<(u8, String)>,
}

async fn prerequisites(state: &Services) -> CoreResult<Prerequisites> {
    let mut conn = state.store.read_conn().await?;
    let Some(external_network) = auto_allocated::default_external_network(&mut conn).await? else {
        return Err(failure("No default router:external network."));
    };
    let mut pools = Vec::new();
    for version in [4u8, 6] {
        if let Some(pool) = subnet_pools::default_of(&mut *conn, i64::from(version)).await? {
            pools.push((version, pool.id));
        }
    }
    Ok(Prerequisites {
        external_network,
        pools,
    })
}

/// `?fields=dry-run`: whether a topology could be made, without making anything.
pub async fn dry_run(state: &Services) -> CoreResult<()> {
    if prerequisites(state).await?.pools.is_empty() {
        return Err(failure("No default subnetpools defined."));
    }
    Ok(())
}

/// The project's topology network, made on first call.
pub async fn get_or_create(
    state: &Services,
    ctx: &RequestContext,
    project_id: &str,
) -> CoreResult<String> {
    {
        let mut conn = state.store.read_conn().await?;
        if let Some(t) = auto_allocated::get(&mut *conn, project_id).await? {
            return Ok(t.network_id);
        }
    }
    let needs = prerequisites(state).await?;
    // Building is writing: a reader may read a topology, not have one made.
    ctx.require_write("create_auto_allocated_topology")?;
    let acting = acting_for(ctx, project_id);
    let (network_id, subnet_ids) = private_network(state, &acting, project_id, &needs)
        .await
        .map_err(|e| {
            tracing::warn!(
                "auto-allocation for {project_id}: private network: {}",
                e.message
            );
            // Over quota is the project's to fix, and says so (Neutron re-raises it too).
            if e.kind == "OverQuota" {
                e
            } else {
                failure("Unable to provide project private network.")
            }
        })?;
    let router_id = match connect(state, &acting, &needs, &subnet_ids).await {
        Ok(router_id) => router_id,
        Err((made, e)) => {
            tracing::warn!(
                "auto-allocation for {project_id}: external connectivity: {}",
                e.message
            );
            undo(state, &acting, made.as_deref(), &subnet_ids, &network_id).await;
            return Err(failure("Unable to provide external connectivity."));
        }
    };
    let mut tx = state.store.begin_write().await?;
    let topology = Topology {
        project_id: project_id.to_string(),
        network_id: network_id.clone(),
        router_id: Some(router_id.clone()),
    };
    if !auto_allocated::insert_if_absent(&mut tx, &topology).await? {
        // Another request made the project's topology meanwhile: its answer stands.
        let winner = auto_allocated::get(&mut *tx, project_id).await?;
        store::rollback(tx).await?;
        undo(state, &acting, Some(&router_id), &subnet_ids, &network_id).await;
        return winner
            .map(|t| t.network_id)
            .ok_or_else(|| NeutronError::internal("the project's topology vanished"));
    }
    store::commit(tx).await?;
    // Up only now that everything exists: Nova ignores networks that are down.
    let up = json!({"admin_state_up": true});
    crate::networks::update(state, &acting, &network_id, object(&up)).await?;
    Ok(network_id)
}

/// Removes the project's topology: each interface, the router, the network; what is gone
/// already is skipped. A project without one: nothing to do.
pub async fn delete(state: &Services, ctx: &RequestContext, project_id: &str) -> CoreResult<()> {
    let topology = {
        let mut conn = state.store.read_conn().await?;
        auto_allocated::get(&mut *conn, project_id).await?
    };
    let Some(t) = topology else {
        return Ok(());
    };
    let acting = acting_for(ctx, project_id);
    let subnet_ids = {
        let mut conn = state.store.read_conn().await?;
        crate::networks::subnet_ids(&mut conn, &t.network_id).await?
    };
    // The row goes last: a network still in use (an instance on it) keeps the topology, and
    // the error says why.
    remove(
        state,
        &acting,
        t.router_id.as_deref(),
        &subnet_ids,
        &t.network_id,
    )
    .await?;
    let mut tx = state.store.begin_write().await?;
    auto_allocated::delete(&mut tx, project_id).await?;
    store::commit(tx).await?;
    Ok(())
}

/// The network (down) and one subnet per default pool, in one transaction.
async fn private_network(
    state: &Services,
    ctx: &RequestContext,
    project_id: &str,
    needs: &Prerequisites,
) -> CoreResult<(String, Vec<String>)> {
    if needs.pools.is_empty() {
        return Err(NeutronError::bad_request("No default subnetpools defined."));
    }
    let backend = state.store.backend;
    let mut tx = state.store.begin_write().await?;
    let project = [(project_id.to_string(), 1)];
    quotas::Ledger::check(&mut tx, backend, "network", &project).await?;
    let network_body = json!({"name": NETWORK_NAME, "admin_state_up": false, "shared": false});
    let network = crate::networks::create_one(
        state,
        project_id.to_string(),
        object(&network_body),
        &mut tx,
    )
    .await?;
    let subnets = [(project_id.to_string(), needs.pools.len() as i64)];
    quotas::Ledger::check(&mut tx, backend, "subnet", &subnets).await?;
    let mut subnet_ids = Vec::new();
    for (version, pool) in &needs.pools {
        let body = json!({
            "network_id": network.id,
            "ip_version": version,
            "subnetpool_id": pool,
            "name": format!("auto_allocated_subnet_v{version}"),
        });
        let (subnet, _) =
            crate::subnets::create_one(state, ctx, project_id.to_string(), object(&body), &mut tx)
                .await?;
        subnet_ids.push(subnet.id);
    }
    let revision = crate::dhcp_scheduling::subnets_changed(state, &mut tx, &network.id).await?;
    store::commit(tx).await?;
    state.feed.committed(revision);
    crate::dhcp_scheduling::bind_committed(state, std::slice::from_ref(&network.id)).await;
    Ok((network.id, subnet_ids))
}

/// The router, its gateway on the default external network, an interface on each subnet.
/// On failure: the router made so far (if any) and the error.
async fn connect(
    state: &Services,
    ctx: &RequestContext,
    needs: &Prerequisites,
    subnet_ids: &[String],
) -> Result<String, (Option<String>, NeutronError)> {
    let body = json!({"router": {
        "name": ROUTER_NAME,
        "admin_state_up": true,
        "external_gateway_info": {"network_id": needs.external_network},
    }});
    let router = routers::create(state, ctx, object(&body))
        .await
        .map_err(|e| (None, e))?;
    let router_id = router["router"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for subnet_id in subnet_ids {
        let body = json!({"subnet_id": subnet_id});
        if let Err(e) = routers::add_interface(state, ctx, &router_id, object(&body)).await {
            return Err((Some(router_id), e));
        }
    }
    Ok(router_id)
}

/// The caller acting on the project's resources, with the caller's own roles (an admin may
/// act on another project's topology; a project user only on their own).
fn acting_for(ctx: &RequestContext, project_id: &str) -> RequestContext {
    RequestContext {
        project_id: project_id.to_string(),
        user_id: ctx.user_id.clone(),
        roles: ctx.roles.clone(),
    }
}

/// Removes what a topology is made of, skipping what is gone already; the network's removal
/// is the one failure that counts (in use), the others are logged.
async fn remove(
    state: &Services,
    ctx: &RequestContext,
    router_id: Option<&str>,
    subnet_ids: &[String],
    network_id: &str,
) -> CoreResult<()> {
    if let Some(router_id) = router_id {
        for subnet_id in subnet_ids {
            let body = json!({"subnet_id": subnet_id});
            if let Err(e) = routers::remove_interface(state, ctx, router_id, object(&body)).await
                && e.status != crate::error::Status::NOT_FOUND
            {
                tracing::warn!(
                    "auto-allocation: removing interface of {router_id}: {}",
                    e.message
                );
            }
        }
        if let Err(e) = routers::delete(state, ctx, router_id).await
            && e.status != crate::error::Status::NOT_FOUND
        {
            tracing::warn!(
                "auto-allocation: deleting router {router_id}: {}",
                e.message
            );
        }
    }
    match crate::networks::delete(state, ctx, network_id).await {
        Err(e) if e.status != crate::error::Status::NOT_FOUND => Err(e),
        _ => Ok(()),
    }
}

/// [`remove`] of what this request made and must not leave behind.
async fn undo(
    state: &Services,
    ctx: &RequestContext,
    router_id: Option<&str>,
    subnet_ids: &[String],
    network_id: &str,
) {
    if let Err(e) = remove(state, ctx, router_id, subnet_ids, network_id).await {
        tracing::warn!(
            "auto-allocation: removing network {network_id}: {}",
            e.message
        );
    }
}

fn object(v: &Value) -> &Map<String, Value> {
    v.as_object().expect("a JSON object literal")
}

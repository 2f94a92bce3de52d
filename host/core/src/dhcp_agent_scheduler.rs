//! The DHCP agent scheduler's API (Neutron's `dhcp_agent_scheduler` extension): which networks a
//! DHCP agent serves, which DHCP agents serve a network, and an admin giving a network to an
//! agent or taking it back by hand. Hosting is [`dhcp_scheduling`]'s: a (network, host) row
//! with the DHCP port that host serves the network with. A manual change takes the same
//! `dhcp/<network>` lock as scheduling and records the same feed entries, so the hosts hear of
//! it as of any scheduling. Everything here is admin-only (Neutron's policy), checked first.
//! Errors are neutron-lib's `dhcpagentscheduler` exceptions.

use crate::dhcp_scheduling::{self, DHCP_AGENT_TYPE};
use crate::error::{CoreResult, NeutronError};
use crate::{RequestContext, Services, networks};
use neutrino_store::agents::{self, Agent};
use neutrino_store::{self as store, dhcp_hosting};

pub fn agent_not_found(id: &str) -> NeutronError {
    NeutronError::not_found("AgentNotFound", format!("Agent {id} could not be found."))
}

fn require_admin(ctx: &RequestContext, rule: &str) -> CoreResult<()> {
    if ctx.is_admin() {
        Ok(())
    } else {
        Err(NeutronError::forbidden(rule))
    }
}

/// `GET /v2.0/agents/{id}/dhcp-networks`: the ids of the networks the agent serves (none for
/// an agent of another type).
pub async fn networks_of_agent(
    state: &Services,
    ctx: &RequestContext,
    agent_id: &str,
) -> CoreResult<Vec<String>> {
    require_admin(ctx, "get_dhcp-networks")?;
    let agent = agents::get(&state.store.read, agent_id)
        .await?
        .ok_or_else(|| agent_not_found(agent_id))?;
    if agent.agent_type != DHCP_AGENT_TYPE {
        return Ok(Vec::new());
    }
    let mut conn = state.store.read_conn().await?;
    Ok(dhcp_hosting::on_host(&mut *conn, &agent.host)
        .await?
        .into_iter()
        .map(|h| h.network_id)
        .collect())
}

/// `GET /v2.0/networks/{id}/dhcp-agents`: the DHCP agents serving the network.
pub async fn agents_of_network(
    state: &Services,
    ctx: &RequestContext,
    network_id: &str,
) -> CoreResult<Vec<Agent>> {
    require_admin(ctx, "get_dhcp-agents")?;
    let mut conn = state.store.read_conn().await?;
    networks::visible_in(&mut conn, ctx, network_id).await?;
    let hosts: Vec<String> = dhcp_hosting::of_network(&mut *conn, network_id)
        .await?
        .into_iter()
        .map(|h| h.host)
        .collect();
    Ok(agents::of_type(&mut *conn, DHCP_AGENT_TYPE)
        .await?
        .into_iter()
        .filter(|a| hosts.contains(&a.host))
        .collect())
}

/// `POST /v2.0/agents/{id}/dhcp-networks`: the agent serves the network too, with a DHCP port
/// of its own (addresses on the network's DHCP subnets, none while it has none), bound after
/// the commit. As Neutron: the network must exist (`NetworkNotFound`), the agent must be an
/// enabled DHCP agent (`InvalidDHCPAgent`, a 404) not serving it yet
/// (`NetworkHostedByDHCPAgent`). Beyond `dhcp_agents_per_network` is allowed: it is the
/// automatic scheduler's target, not a limit on admins.
pub async fn add(
    state: &Services,
    ctx: &RequestContext,
    agent_id: &str,
    network_id: &str,
) -> CoreResult<()> {
    require_admin(ctx, "create_dhcp-network")?;
    let mut tx = state.store.begin_write().await?;
    dhcp_scheduling::lock(state, &mut tx, network_id).await?;
    let network = store::networks::get(&mut *tx, network_id)
        .await?
        .ok_or_else(|| networks::not_found(network_id))?;
    let agent = agents::get_for_update(&mut tx, agent_id)
        .await?
        .ok_or_else(|| agent_not_found(agent_id))?;
    if agent.agent_type != DHCP_AGENT_TYPE || !agent.admin_state_up {
        return Err(NeutronError::not_found(
            "InvalidDHCPAgent",
            format!("Agent {agent_id} is not a valid DHCP Agent or has been disabled."),
        ));
    }
    let hostings = dhcp_hosting::of_network(&mut *tx, network_id).await?;
    if hostings.iter().any(|h| h.host == agent.host) {
        return Err(NeutronError::conflict(
            "NetworkHostedByDHCPAgent",
            format!(
                "The network {network_id} has been already hosted by the DHCP Agent {agent_id}."
            ),
        ));
    }
    let subnets = dhcp_scheduling::dhcp_subnets(&mut tx, network_id).await?;
    let revision =
        dhcp_scheduling::create_dhcp_port(state, &mut tx, &network, &subnets, &agent.host).await?;
    store::commit(tx).await?;
    state.feed.committed(revision);
    dhcp_scheduling::bind_committed(state, &[network_id.to_string()]).await;
    Ok(())
}

/// `DELETE /v2.0/agents/{id}/dhcp-networks/{network_id}`: the agent no longer serves the
/// network; its DHCP port goes and its host is told. `NetworkNotHostedByDhcpAgent` when it
/// did not serve it. (Neutron keeps the port, reserved, for a later add to reuse its address;
/// here a later add makes a new one.)
pub async fn remove(
    state: &Services,
    ctx: &RequestContext,
    agent_id: &str,
    network_id: &str,
) -> CoreResult<()> {
    require_admin(ctx, "delete_dhcp-network")?;
    let mut tx = state.store.begin_write().await?;
    dhcp_scheduling::lock(state, &mut tx, network_id).await?;
    let agent = agents::get_for_update(&mut tx, agent_id)
        .await?
        .ok_or_else(|| agent_not_found(agent_id))?;
    let hosting = dhcp_hosting::of_network(&mut *tx, network_id)
        .await?
        .into_iter()
        .find(|h| h.host == agent.host && agent.agent_type == DHCP_AGENT_TYPE);
    let Some(hosting) = hosting else {
        return Err(NeutronError::conflict(
            "NetworkNotHostedByDhcpAgent",
            format!("The network {network_id} is not hosted by the DHCP Agent {agent_id}."),
        ));
    };
    let revision = dhcp_scheduling::unschedule(state, &mut tx, &hosting).await?;
    store::commit(tx).await?;
    state.feed.committed(revision);
    Ok(())
}

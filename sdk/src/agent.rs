//! The binding skeleton shared by agent-based drivers (Neutron's `AgentMechanismDriverBase`).
//!
//! A driver supplies only what is its own, the check of one segment against one agent;
//! [`bind_with_agents`] does the rest, in the order every driver follows, with the same pass
//! reasons everywhere.

use crate::log;
use crate::types::{Agent, BindContext, BindDecision, Bound, Segment, VnicType};
use crate::util::{agents_of_type, vnic_type_name};

/// Decides a level-0 binding for a driver whose ports need an agent of `agent_type` on the
/// host:
///
/// 1. a vNIC type not in `vnic_types` passes: `vnic_type direct not supported by <driver>`;
/// 2. no agent of `agent_type` on the host passes: `no <agent type> on host <host>`;
/// 3. only dead ones passes, `<agent type> on host <host> is not alive`, with a warning per
///    dead agent;
/// 4. nothing in `segments_to_bind` passes: `no segments to bind for port <id> on host <host>`;
/// 5. otherwise each alive agent, then each segment in order, is given to `try_segment`. The
///    first `Ok` is the decision; if there is none, the pass gives every distinct
///    `segment <id>: <why>`, joined by `; `.
///
/// Never an error: what the driver cannot bind is a pass with the reason why.
pub fn bind_with_agents(
    ctx: &BindContext,
    driver: &str,
    agent_type: &str,
    vnic_types: &[VnicType],
    try_segment: impl Fn(&Agent, &Segment) -> Result<Bound, String>,
) -> BindDecision {
    let port = &ctx.port;
    if !vnic_types.contains(&port.vnic_type) {
        return pass(format!(
            "vnic_type {} not supported by {driver}",
            vnic_type_name(port.vnic_type)
        ));
    }
    let agents: Vec<&Agent> = agents_of_type(&ctx.agents, agent_type).collect();
    if agents.is_empty() {
        return pass(format!("no {agent_type} on host {}", ctx.host));
    }
    let alive: Vec<&Agent> = agents.iter().copied().filter(|a| a.alive).collect();
    if alive.is_empty() {
        for agent in &agents {
            log::warn(&format!(
                "refusing to bind port {} to dead agent {} on host {}",
                port.id, agent.id, ctx.host
            ));
        }
        return pass(format!("{agent_type} on host {} is not alive", ctx.host));
    }
    if ctx.segments_to_bind.is_empty() {
        return pass(format!(
            "no segments to bind for port {} on host {}",
            port.id, ctx.host
        ));
    }
    let mut reasons: Vec<String> = Vec::new();
    for agent in alive {
        for segment in &ctx.segments_to_bind {
            match try_segment(agent, segment) {
                Ok(bound) => {
                    log::debug(&format!(
                        "bound port {} to segment {} as {} (agent {}): {}",
                        port.id,
                        segment.id,
                        bound.vif_type,
                        agent.id,
                        bound
                            .vif_details
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    return BindDecision::Bound(bound);
                }
                Err(why) => {
                    let reason = format!("segment {}: {why}", segment.id);
                    if !reasons.contains(&reason) {
                        reasons.push(reason);
                    }
                }
            }
        }
    }
    pass(reasons.join("; "))
}

/// A pass, logged at debug level.
fn pass(reason: String) -> BindDecision {
    log::debug(&format!("not binding: {reason}"));
    BindDecision::Pass(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Level;
    use crate::testing::{
        self, HOST, PORT_ID, bind_context, dead_agents, expect_pass, live_agents, network, port,
    };
    use crate::types::NetworkType;
    use crate::{json_str, pair};

    const AGENT: &str = "Test agent";

    /// Binds flat segments only, with the segment's physical network in `vif_details`.
    fn flat_only(_agent: &Agent, segment: &Segment) -> Result<Bound, String> {
        match (segment.network_type, segment.physical_network.as_deref()) {
            (NetworkType::Flat, Some(physnet)) => Ok(Bound {
                segment_id: segment.id.clone(),
                vif_type: "test".into(),
                vif_details: vec![pair("physnet", json_str(physnet))],
            }),
            _ => Err("not flat".into()),
        }
    }

    fn decide(ctx: &BindContext) -> BindDecision {
        bind_with_agents(ctx, "test", AGENT, &[VnicType::Normal], flat_only)
    }

    #[test]
    fn binds_the_first_segment_that_fits() {
        let mut ctx = bind_context(port(), network(NetworkType::Vlan), live_agents(AGENT));
        let flat = network(NetworkType::Flat).segments.remove(0);
        ctx.segments_to_bind.push(flat.clone());
        ctx.segments_to_bind.push(Segment {
            id: "seg-flat-2".into(),
            ..flat
        });
        testing::take_logs();
        assert_eq!(
            decide(&ctx),
            BindDecision::Bound(Bound {
                segment_id: "seg-flat".into(),
                vif_type: "test".into(),
                vif_details: vec![pair("physnet", "\"physnet1\"")],
            })
        );
        let logs = testing::take_logs();
        assert!(
            logs.iter().any(|(level, line)| *level == Level::Debug
                && line.contains("bound port")
                && line.contains("seg-flat")),
            "{logs:?}"
        );
    }

    #[test]
    fn passes_on_another_vnic_type() {
        let mut port = port();
        port.vnic_type = VnicType::DirectPhysical;
        let ctx = bind_context(port, network(NetworkType::Flat), live_agents(AGENT));
        assert_eq!(
            expect_pass(decide(&ctx)),
            "vnic_type direct-physical not supported by test"
        );
    }

    #[test]
    fn passes_without_an_agent_of_the_type() {
        let ctx = bind_context(
            port(),
            network(NetworkType::Flat),
            live_agents("Other agent"),
        );
        assert_eq!(
            expect_pass(decide(&ctx)),
            format!("no Test agent on host {HOST}")
        );
        let ctx = bind_context(port(), network(NetworkType::Flat), vec![]);
        assert_eq!(
            expect_pass(decide(&ctx)),
            format!("no Test agent on host {HOST}")
        );
    }

    #[test]
    fn passes_and_warns_with_only_dead_agents() {
        testing::take_logs();
        let ctx = bind_context(port(), network(NetworkType::Flat), dead_agents(AGENT));
        assert_eq!(
            expect_pass(decide(&ctx)),
            format!("Test agent on host {HOST} is not alive")
        );
        let logs = testing::take_logs();
        let warning = format!(
            "refusing to bind port {PORT_ID} to dead agent {} on host {HOST}",
            ctx.agents[0].id
        );
        assert!(
            logs.iter()
                .any(|(level, line)| *level == Level::Warn && *line == warning),
            "{logs:?}"
        );
    }

    #[test]
    fn a_dead_agent_beside_a_live_one_is_ignored() {
        let mut agents = dead_agents(AGENT);
        agents.extend(live_agents(AGENT));
        let ctx = bind_context(port(), network(NetworkType::Flat), agents);
        assert!(matches!(decide(&ctx), BindDecision::Bound(_)));
    }

    #[test]
    fn passes_with_nothing_to_bind() {
        let mut ctx = bind_context(port(), network(NetworkType::Flat), live_agents(AGENT));
        ctx.segments_to_bind.clear();
        assert_eq!(
            expect_pass(decide(&ctx)),
            format!("no segments to bind for port {PORT_ID} on host {HOST}")
        );
    }

    #[test]
    fn passes_with_every_distinct_segment_reason() {
        let mut agents = live_agents(AGENT);
        agents.extend(live_agents(AGENT));
        let mut ctx = bind_context(port(), network(NetworkType::Vlan), agents);
        ctx.segments_to_bind
            .extend(network(NetworkType::Vxlan).segments);
        assert_eq!(
            expect_pass(decide(&ctx)),
            "segment seg-vlan: not flat; segment seg-vxlan: not flat"
        );
    }
}

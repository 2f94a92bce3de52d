//! `neutrino serve`: the API server (`neutrino_api::server`) and, beside it, the local host's
//! agent (all-in-one). Wiring only: the two know nothing of each other.

use std::net::SocketAddr;

use anyhow::Context as _;
use tokio_util::task::AbortOnDropHandle;

pub use neutrino_api::server::*;

/// The local host's agent, run inside `neutrino serve`, reaching the server over its own socket.
#[derive(Debug, Clone)]
pub struct EmbeddedAgent {
    pub host: String,
    pub config: neutrino_agent::config::NodeConfig,
}

/// Serves until Ctrl-C / SIGTERM, with the embedded agent when one is given.
pub async fn serve(options: ServeOptions, agent: Option<EmbeddedAgent>) -> anyhow::Result<()> {
    let bound = bind(&options).await?;
    // After `bind` printed the address, which scripts and tests read.
    let _agent = match &agent {
        Some(agent) => start_embedded_agent(&options, agent, bound.local_addr()?)?,
        None => None,
    };
    bound.serve_until_signal().await
}

/// Starts the local agent, or says loudly why not (it needs root to change the kernel).
fn start_embedded_agent(
    options: &ServeOptions,
    agent: &EmbeddedAgent,
    listening: SocketAddr,
) -> anyhow::Result<Option<AbortOnDropHandle<()>>> {
    if !neutrino_agent::can_run_here() {
        eprintln!(
            "neutrino: NOT starting the embedded agent for host {:?}: it needs root to create \
             namespaces and devices. The API works; ports bound to this host end in \
             binding_failed until an agent runs here (`sudo neutrino agent ...`, or serve as \
             root).",
            agent.host
        );
        return Ok(None);
    }
    let mut server = listening;
    if server.ip().is_unspecified() {
        server.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let path = options.agent_token_path();
    let token =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let agent_options = neutrino_agent::AgentOptions {
        server: format!("http://{server}"),
        host: agent.host.clone(),
        token,
        state_dir: options.data_dir.join("agent"),
        config: agent.config.clone(),
    };
    println!("neutrino: embedded agent for host {:?}", agent.host);
    let task = tokio::spawn(async move {
        if let Err(e) = neutrino_agent::run(agent_options).await {
            tracing::error!("the embedded agent stopped: {e:#}");
            eprintln!("neutrino: the embedded agent stopped: {e:#}");
        }
    });
    Ok(Some(AbortOnDropHandle::new(task)))
}

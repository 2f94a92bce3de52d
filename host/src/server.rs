//! `neutrino serve`: the API on a socket, state in SQLite (default) or PostgreSQL.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

use crate::agent::AbortOnDrop;
use crate::api::auth::AuthStrategy;
use crate::api::internal::AgentToken;
use crate::api::keystone::Keystone;
use crate::api::{self, ApiConfig, AppState};
use crate::heartbeat::Heartbeats;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// `sqlite://...` or `postgres://...`; None: an SQLite file in `data_dir`.
    pub database: Option<String>,
    pub data_dir: PathBuf,
    /// The agents' shared secret; None: `<data_dir>/agent-token`. Created if absent.
    pub agent_token_file: Option<PathBuf>,
    pub api: ApiConfig,
    /// The agent embedded for this host (all-in-one); None with `--no-agent`.
    pub agent: Option<EmbeddedAgent>,
}

/// The local host's agent, run inside `neutrino serve`, reaching the server over its own socket.
#[derive(Debug, Clone)]
pub struct EmbeddedAgent {
    pub host: String,
    pub config: crate::agent::config::NodeConfig,
}

impl ServeOptions {
    pub fn database_url(&self) -> String {
        self.database
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("neutrino.db").display()))
    }

    pub fn agent_token_path(&self) -> PathBuf {
        self.agent_token_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("agent-token"))
    }
}

/// Opens the store, loads the agent token and starts the heartbeat writer and the sweep that
/// fails boots past their timeout.
pub async fn state(options: &ServeOptions) -> anyhow::Result<AppState> {
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("data directory {}", options.data_dir.display()))?;
    let agent_token = AgentToken::load_or_create(&options.agent_token_path())?;
    let store = Store::connect(&options.database_url()).await?;
    let keystone = match &options.api.auth {
        AuthStrategy::NoAuth => None,
        AuthStrategy::Keystone { url } => Some(Arc::new(Keystone::new(url)?)),
    };
    let heartbeats = Heartbeats::new(store.clone(), options.api.agent_down_time);
    heartbeats.spawn_flusher(options.api.heartbeat_flush_interval);
    let state = AppState::new(
        store,
        options.api.clone(),
        heartbeats,
        agent_token,
        keystone,
    );
    api::compute::build_timeout::spawn(state.clone());
    Ok(state)
}

/// The app (also used by tests, which bind their own socket).
pub async fn app(options: &ServeOptions) -> anyhow::Result<axum::Router> {
    Ok(api::router(state(options).await?))
}

/// Serves until Ctrl-C / SIGTERM, then writes the heartbeats still buffered.
pub async fn serve(options: ServeOptions) -> anyhow::Result<()> {
    let state = state(&options).await?;
    let heartbeats = state.heartbeats.clone();
    let app = api::router(state);
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("listen on {}", options.listen))?;
    tracing::info!(
        "neutrino serving the Networking API v2.0 on http://{}",
        listener.local_addr()?
    );
    println!(
        "neutrino: listening on http://{} (database {})",
        listener.local_addr()?,
        options.database_url()
    );
    // After the line above, which scripts and tests read for the address.
    let _agent = match &options.agent {
        Some(agent) => start_embedded_agent(&options, agent, listener.local_addr()?)?,
        None => None,
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let ctrl_c = tokio::signal::ctrl_c();
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        })
        .await?;
    heartbeats.flush().await?;
    Ok(())
}

/// Serves in a task of the current runtime until the handle is dropped (tests, benches):
/// the address bound (give port 0 for a free one) and the handle.
pub async fn spawn(options: ServeOptions) -> anyhow::Result<(SocketAddr, AbortOnDrop)> {
    let app = api::router(state(&options).await?);
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("listen on {}", options.listen))?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("server stopped: {e}");
        }
    });
    Ok((addr, AbortOnDrop(task)))
}

/// Starts the local agent, or says loudly why not (it needs root to change the kernel).
fn start_embedded_agent(
    options: &ServeOptions,
    agent: &EmbeddedAgent,
    listening: SocketAddr,
) -> anyhow::Result<Option<AbortOnDrop>> {
    if !crate::agent::can_run_here() {
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
    let agent_options = crate::agent::AgentOptions {
        server: format!("http://{server}"),
        host: agent.host.clone(),
        token,
        state_dir: options.data_dir.join("agent"),
        config: agent.config.clone(),
    };
    println!("neutrino: embedded agent for host {:?}", agent.host);
    let task = tokio::spawn(async move {
        if let Err(e) = crate::agent::run(agent_options).await {
            tracing::error!("the embedded agent stopped: {e:#}");
            eprintln!("neutrino: the embedded agent stopped: {e:#}");
        }
    });
    Ok(Some(AbortOnDrop(task)))
}

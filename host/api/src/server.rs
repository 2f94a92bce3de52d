//! `neutrino serve`: the API on a socket, state in SQLite (default) or PostgreSQL.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

use tokio_util::task::AbortOnDropHandle;

use crate::auth::AuthStrategy;
use crate::heartbeat::Heartbeats;
use crate::internal::AgentToken;
use crate::keystone::Keystone;
use crate::{ApiConfig, AppState};
use neutrino_store::Store;

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// `sqlite://...` or `postgres://...`; None: an SQLite file in `data_dir`.
    pub database: Option<String>,
    pub data_dir: PathBuf,
    /// The shared agent token's file; None: `<data_dir>/agent-token`. Read (created if
    /// absent) only with `shared_agent_token`.
    pub agent_token_file: Option<PathBuf>,
    /// Accept the token of `agent_token_file` for every host (the all-in-one option). Without
    /// it each host's agent needs its own credential (`neutrino agent enroll HOST`).
    pub shared_agent_token: bool,
    pub api: ApiConfig,
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

/// Opens the store, loads the shared agent token (when accepted) and starts the heartbeat writer and the sweep that
/// fails boots past their timeout.
pub async fn state(options: &ServeOptions) -> anyhow::Result<AppState> {
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("data directory {}", options.data_dir.display()))?;
    let shared_agent_token = if options.shared_agent_token {
        Some(AgentToken::load_or_create(&options.agent_token_path())?)
    } else {
        None
    };
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
        shared_agent_token,
        keystone,
    );
    neutrino_core::compute::build_timeout::spawn(state.services.clone());
    neutrino_core::dhcp_failover::spawn(state.services.clone());
    neutrino_core::port_binding::spawn_pending_sweep(state.services.clone());
    neutrino_core::bulk::spawn_sweep(state.services.clone());
    Ok(state)
}

/// The app (also used by tests, which bind their own socket).
pub async fn app(options: &ServeOptions) -> anyhow::Result<axum::Router> {
    Ok(crate::router(state(options).await?))
}

/// A server bound to its socket, not serving yet: what runs beside it (the embedded agent)
/// can be started between [`bind`] and [`Bound::serve_until_signal`].
pub struct Bound {
    listener: tokio::net::TcpListener,
    state: AppState,
}

/// Opens the state and binds the socket; prints the address (scripts and tests read the line).
pub async fn bind(options: &ServeOptions) -> anyhow::Result<Bound> {
    let state = state(options).await?;
    // Every configured driver is loaded and checked before the server answers: a refused one
    // stops the start with its file and reason, instead of a 500 on every bind.
    state.services.load_drivers().await?;
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
    Ok(Bound { listener, state })
}

impl Bound {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// What `/healthz` reports besides the database: set the embedded agent's here.
    /// The server's store (the embedded agent's credential is enrolled through it).
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    pub fn health(&self) -> Arc<crate::health::ServerHealth> {
        self.state.health.clone()
    }

    /// Serves until Ctrl-C / SIGTERM (see [`Bound::serve_until`]).
    pub async fn serve_until_signal(self) -> anyhow::Result<()> {
        self.serve_until(stop_signal()).await
    }

    /// Serves until `stop` resolves. Then it stops listening, answers the agents' waiting long
    /// polls at once (they would hold the stop for up to their 30 s), lets the other requests
    /// running finish, for [`STOP_GRACE`] at most, and writes the heartbeats still buffered.
    pub async fn serve_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let heartbeats = self.state.heartbeats.clone();
        let feed = self.state.feed.clone();
        let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = crate::connections::serve(
            self.listener,
            crate::router(self.state),
            crate::connections::default_max_connections(),
            async move {
                stop.await;
                feed.stop();
                let _ = stopping.send(());
            },
        );
        let grace = async move {
            match stopped.await {
                Ok(()) => tokio::time::sleep(STOP_GRACE).await,
                // The server ended before any stop: its own answer tells why.
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            () = server => {}
            () = grace => tracing::warn!(
                "requests still running {STOP_GRACE:?} after the stop: stopping without them"
            ),
        }
        heartbeats.flush().await?;
        Ok(())
    }
}

/// How long requests still running when the server stops may take to finish before it stops
/// without them.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Resolves on Ctrl-C or SIGTERM.
pub async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
}

/// Serves in a task of the current runtime until the handle is dropped (tests, benches):
/// the address bound (give port 0 for a free one) and the handle.
pub async fn spawn(options: ServeOptions) -> anyhow::Result<(SocketAddr, AbortOnDropHandle<()>)> {
    let app = crate::router(state(&options).await?);
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("listen on {}", options.listen))?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(crate::connections::serve(
        listener,
        app,
        crate::connections::default_max_connections(),
        std::future::pending(),
    ));
    Ok((addr, AbortOnDropHandle::new(task)))
}

//! `neutrino serve`: the API on a socket, state in SQLite (default) or PostgreSQL.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::api::{self, ApiConfig, AppState};
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// `sqlite://...` or `postgres://...`; None: an SQLite file in `data_dir`.
    pub database: Option<String>,
    pub data_dir: PathBuf,
    pub api: ApiConfig,
}

impl ServeOptions {
    pub fn database_url(&self) -> String {
        self.database
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("neutrino.db").display()))
    }
}

/// Opens the store and builds the app (also used by tests, which bind their own socket).
pub async fn app(options: &ServeOptions) -> anyhow::Result<axum::Router> {
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("data directory {}", options.data_dir.display()))?;
    let store = Store::connect(&options.database_url()).await?;
    Ok(api::router(AppState::new(store, options.api.clone())))
}

/// Serves until Ctrl-C / SIGTERM.
pub async fn serve(options: ServeOptions) -> anyhow::Result<()> {
    let app = app(&options).await?;
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
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let ctrl_c = tokio::signal::ctrl_c();
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        })
        .await?;
    Ok(())
}

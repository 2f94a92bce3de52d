//! `neutrino serve`: the API server (`neutrino_api::server`) and, beside it, the local host's
//! agent (all-in-one). Wiring only: the two know nothing of each other.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::task::AbortOnDropHandle;

pub use neutrino_api::health::{AgentState, EmbeddedAgentHealth, ServerHealth};
pub use neutrino_api::server::*;

/// The local host's agent, run inside `neutrino serve`, reaching the server over its own socket.
#[derive(Debug, Clone)]
pub struct EmbeddedAgent {
    pub host: String,
    pub config: neutrino_agent::config::NodeConfig,
}

/// Serves until Ctrl-C / SIGTERM, with the embedded agent when one is given, in the data
/// directory the caller has locked ([`lock_data_dir`]). On the signal the embedded agent is
/// stopped first, then the API (see [`Bound::serve_until`]).
pub async fn serve(
    options: ServeOptions,
    agent: Option<EmbeddedAgent>,
    _lock: &DataDirLock,
) -> anyhow::Result<()> {
    let bound = bind(&options).await?;
    let _trim = AbortOnDropHandle::new(tokio::spawn(give_back_freed_memory()));
    // After `bind` printed the address, which scripts and tests read.
    let agent = match &agent {
        Some(agent) => {
            start_embedded_agent(
                &options,
                agent,
                bound.store(),
                bound.local_addr()?,
                &bound.health(),
            )
            .await?
        }
        None => None,
    };
    bound
        .serve_until(async move {
            stop_signal().await;
            if let Some(agent) = agent {
                agent.abort();
                let _ = agent.await;
            }
        })
        .await
}

/// How often memory the allocator keeps after a burst is given back.
const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// Gives the memory freed since the last time back to the system, every [`TRIM_INTERVAL`].
/// After a burst of bulk creates glibc keeps what their bodies and answers used, spread over
/// its arenas between chunks still in use, so only the top of each heap would ever go back:
/// at 100,000 ports the server held 68 MB of heap with 18 MB in use (RSS 97 MB; after a trim
/// 53 MB). `malloc_trim` returns the free pages of every arena.
async fn give_back_freed_memory() {
    let mut tick = tokio::time::interval(TRIM_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let _ = tokio::task::spawn_blocking(trim).await;
    }
}

#[cfg(target_env = "gnu")]
fn trim() {
    // SAFETY: malloc_trim takes the allocator's own locks and only releases pages of free
    // chunks; it may run beside any other allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(target_env = "gnu"))]
fn trim() {}

/// The file a `serve` locks in its data directory.
pub const LOCK_FILE: &str = "serve.lock";

/// A `serve`'s exclusive hold on its data directory (the SQLite file, the agent token, the
/// embedded agent's state): an advisory lock on [`LOCK_FILE`], held while this lives, and
/// by the kernel no longer than the process.
#[derive(Debug)]
pub struct DataDirLock {
    _file: std::fs::File,
}

/// Takes the data directory for this process, or says which process has it.
pub fn lock_data_dir(dir: &Path) -> anyhow::Result<DataDirLock> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir).with_context(|| format!("data directory {}", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = match holder.trim() {
                "" => String::new(),
                pid => format!(" (pid {pid})"),
            };
            anyhow::bail!(
                "the data directory {} is in use by another `neutrino serve`{holder}: one \
                 server per data directory; stop that one, or give this one another --data-dir",
                dir.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    file.set_len(0)?;
    writeln!(file, "{}", std::process::id())?;
    Ok(DataDirLock { _file: file })
}

/// The first wait before the embedded agent is started again; it doubles with every failure
/// in a row, up to [`AGENT_RETRY_MAX`].
pub const AGENT_RETRY_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between two starts of the embedded agent.
pub const AGENT_RETRY_MAX: Duration = Duration::from_secs(60);
/// An agent that ran this long before it stopped is started again after [`AGENT_RETRY_FIRST`].
const AGENT_RAN_WELL: Duration = Duration::from_secs(120);

/// Starts the local agent and keeps it running: when it cannot start or stops, it is started
/// again after a wait that doubles (see [`AGENT_RETRY_FIRST`]), each time said in the log and
/// shown by `/healthz`. Without root it is not started at all, loudly. Its credential is one
/// for its own host, enrolled here.
async fn start_embedded_agent(
    options: &ServeOptions,
    agent: &EmbeddedAgent,
    store: &neutrino_store::Store,
    listening: SocketAddr,
    health: &ServerHealth,
) -> anyhow::Result<Option<AbortOnDropHandle<()>>> {
    if !neutrino_agent::can_run_here() {
        eprintln!(
            "neutrino: NOT starting the embedded agent for host {:?}: it needs root to create \
             namespaces and devices. The API works; ports bound to this host end in \
             binding_failed until an agent runs here (`sudo neutrino agent ...`, or serve as \
             root).",
            agent.host
        );
        health.set_embedded_agent(EmbeddedAgentHealth::new(
            &agent.host,
            AgentState::NotRunning {
                reason: "the agent needs root".into(),
            },
        ));
        return Ok(None);
    }
    let mut server = listening;
    if server.ip().is_unspecified() {
        server.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    // The embedded agent has its own host's credential, made anew at every start (it replaces
    // the host's previous one), never the shared token.
    let token = neutrino_api::internal::enroll(store, &agent.host)
        .await
        .context("the embedded agent's credential")?;
    let agent_options = neutrino_agent::AgentOptions {
        server: format!("http://{server}"),
        host: agent.host.clone(),
        token,
        state_dir: options.data_dir.join("agent"),
        config: agent.config.clone(),
    };
    let state = EmbeddedAgentHealth::new(&agent.host, AgentState::Starting { attempt: 1 });
    health.set_embedded_agent(state.clone());
    println!("neutrino: embedded agent for host {:?}", agent.host);
    let task = tokio::spawn(supervise(agent_options, state));
    Ok(Some(AbortOnDropHandle::new(task)))
}

/// Runs the agent again and again, with backoff, until the task is dropped.
async fn supervise(options: neutrino_agent::AgentOptions, state: Arc<EmbeddedAgentHealth>) {
    let mut wait = AGENT_RETRY_FIRST;
    for attempt in 1u32.. {
        state.set(AgentState::Starting { attempt });
        let started = tokio::time::Instant::now();
        let up = state.clone();
        let ran = neutrino_agent::run_with_ready(options.clone(), move || {
            up.set(AgentState::Up {
                attempt,
                since: neutrino_store::now(),
            });
            tracing::info!("the embedded agent for host {} is up", up.host);
        })
        .await;
        let error = match ran {
            Ok(()) => "it stopped".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if started.elapsed() >= AGENT_RAN_WELL {
            wait = AGENT_RETRY_FIRST;
        }
        tracing::error!(
            "the embedded agent for host {} stopped (attempt {attempt}): {error}; starting it \
             again in {}s",
            options.host,
            wait.as_secs()
        );
        eprintln!(
            "neutrino: the embedded agent stopped: {error}; starting it again in {}s",
            wait.as_secs()
        );
        state.set(AgentState::Retrying {
            attempt,
            error,
            retry_in_seconds: wait.as_secs(),
        });
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(AGENT_RETRY_MAX);
    }
}

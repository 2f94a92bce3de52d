//! `neutrino bench api`: the API's per-request costs over real HTTP.
//!
//! By default it starts its own server (the same router `neutrino serve` uses) on a fresh SQLite
//! database in a temporary directory, on its own multi-threaded runtime, and drives it from a
//! separate single-threaded runtime, as a client process would; with `--url` it drives a server
//! that is already running. Every worker has one keep-alive HTTP/1.1 connection and sends its
//! requests one after another, so concurrency N means N requests in flight.
//!
//! What it measures, in order: port creates at each concurrency level, listing a network that
//! holds exactly `--list-size` ports, binding updates (`binding:host_id`), and the deletes that
//! clean up. Every answer's status is checked; the run stops at the first unexpected one.
//! While the server does not serve ports yet, it measures network creates and lists instead and
//! says so.

pub mod client;
pub mod fairness;
pub mod phase;
pub mod scale;
pub mod server;

use std::fmt;
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use client::{Connection, Endpoint, ovs_agent, report_agent, serves};
pub use fairness::{FairnessOptions, NetworksOptions, run_fairness, run_networks};
use neutrino_api::ApiConfig;
use neutrino_api::server::{ServeOptions, state};
use phase::{Job, load_average, machine_notes, ms, percentile, run_requests};
pub use scale::{ScaleBenchOptions, run_scale};

#[derive(Debug, Clone)]
pub struct ApiBenchOptions {
    /// Drive this server instead of starting one.
    pub url: Option<String>,
    /// Database of the in-process server (default: SQLite in a temporary directory).
    pub database: Option<String>,
    /// Ports created at each concurrency level.
    pub ports: usize,
    pub concurrency: Vec<usize>,
    /// Ports on the network that is listed.
    pub list_size: usize,
    /// How many times that network's ports are listed.
    pub list_repeats: usize,
    /// Host the ports are bound to.
    pub host: String,
    /// With `url`: a file holding `host`'s agent token (`neutrino agent enroll HOST` on the
    /// server side), to register an agent on `host`.
    pub agent_token_file: Option<std::path::PathBuf>,
}

impl Default for ApiBenchOptions {
    fn default() -> Self {
        ApiBenchOptions {
            url: None,
            database: None,
            ports: 3000,
            concurrency: vec![1, 16],
            list_size: 500,
            list_repeats: 200,
            host: "bench-host-1".into(),
            agent_token_file: None,
        }
    }
}

/// One measured operation at one concurrency.
#[derive(Debug, Clone)]
pub struct Phase {
    pub operation: String,
    pub concurrency: usize,
    pub requests: usize,
    pub wall: Duration,
    pub p50: Duration,
    pub p99: Duration,
    /// The target this line is judged against, and whether it was met.
    pub target: Option<(String, bool)>,
}

impl Phase {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64()
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    pub server: String,
    pub notes: Vec<String>,
    pub phases: Vec<Phase>,
}

/// What a phase's answers were: kept bodies (parsed; `null` when not kept) and every length.
struct Answers {
    bodies: Vec<Value>,
    lengths: Vec<usize>,
}

/// Runs `jobs` over `concurrency` connections; returns the phase and the answers in job order.
/// Bodies are kept only with `keep`: lists are not (hundreds of 500 KB bodies would make the
/// client itself the bottleneck on a 2-core machine), only their length is. The first answer
/// with an unexpected status fails the phase.
async fn run_phase(
    endpoint: &Endpoint,
    operation: &str,
    concurrency: usize,
    jobs: Vec<Job>,
    keep: bool,
) -> anyhow::Result<(Phase, Answers)> {
    let n = jobs.len();
    if n == 0 {
        bail!("{operation}: nothing to do");
    }
    let run = run_requests(
        endpoint,
        concurrency,
        n,
        |i| Some(jobs[i].clone()),
        |_, job, r| {
            if r.status != job.expect {
                return Err(format!(
                    "{} {}: expected HTTP {}, got {}: {}",
                    job.method,
                    job.path,
                    job.expect,
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
            }
            let len = r.body.len();
            Ok((len, if keep { r.body } else { Default::default() }))
        },
    )
    .await?;
    let latencies = run.latencies();
    let mut lengths = Vec::with_capacity(n);
    let mut kept = Vec::with_capacity(n);
    for o in &run.outcomes {
        match &o.value {
            Ok((len, body)) => {
                lengths.push(*len);
                kept.push(body);
            }
            Err(e) => bail!("{e}"),
        }
    }
    // Parsed after the clock stopped: the client's JSON work is not the server's latency.
    let bodies = kept
        .into_iter()
        .map(|b| {
            if b.is_empty() {
                Ok(Value::Null)
            } else {
                serde_json::from_slice(b).context("answer is not JSON")
            }
        })
        .collect::<anyhow::Result<Vec<Value>>>()?;
    Ok((
        Phase {
            operation: operation.to_string(),
            concurrency,
            requests: n,
            wall: run.wall,
            p50: percentile(&latencies, 50),
            p99: percentile(&latencies, 99),
            target: None,
        },
        Answers { bodies, lengths },
    ))
}

fn id_of(body: &Value, resource: &str) -> anyhow::Result<String> {
    body[resource]["id"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no {resource} id in {body}"))
}

/// Creates one resource and returns its id.
async fn create(
    conn: &mut Connection,
    collection: &str,
    resource: &str,
    body: Value,
) -> anyhow::Result<String> {
    let r = conn
        .request(
            Method::POST,
            &format!("/v2.0/{collection}"),
            Some(&json!({ resource: body })),
        )
        .await?
        .expect(StatusCode::CREATED, &format!("create {resource}"))?;
    id_of(&r, resource)
}

/// Creates `count` items with bulk requests of 100 (all or nothing each), outside any timing.
async fn bulk_create(
    conn: &mut Connection,
    collection: &str,
    count: usize,
    item: impl Fn(usize) -> Value,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(count);
    let mut i = 0;
    while i < count {
        let chunk: Vec<Value> = (i..count.min(i + 100)).map(&item).collect();
        i += chunk.len();
        let r = conn
            .request(
                Method::POST,
                &format!("/v2.0/{collection}"),
                Some(&json!({ collection: chunk })),
            )
            .await?
            .expect(StatusCode::CREATED, &format!("bulk create {collection}"))?;
        for item in r[collection]
            .as_array()
            .context("bulk answer without a list")?
        {
            ids.push(
                item["id"]
                    .as_str()
                    .context("bulk item without id")?
                    .to_string(),
            );
        }
    }
    Ok(ids)
}

/// The measurements, against a server at `endpoint`.
pub async fn measure(
    endpoint: &Endpoint,
    opts: &ApiBenchOptions,
    agent_token: Option<&str>,
) -> anyhow::Result<(Vec<Phase>, Vec<String>)> {
    let mut notes = Vec::new();
    let mut phases = Vec::new();
    let mut conn = Connection::open(endpoint).await?;
    conn.get("/")
        .await?
        .expect(StatusCode::OK, "GET / (versions)")?;
    let ports = serves(&mut conn, "ports").await? && serves(&mut conn, "subnets").await?;
    let agents = serves(&mut conn, "agents").await?;
    notes.extend(client::lift_quotas(&mut conn).await?);
    let max_concurrency = opts.concurrency.iter().copied().max().unwrap_or(1);
    let run = format!("{:08x}", rand_u32());

    // What is created, listed and bound: ports when the server has them, else networks.
    let (collection, resource) = if ports {
        ("ports", "port")
    } else {
        ("networks", "network")
    };
    let mut networks = Vec::new();
    let mut parent = None;
    if ports {
        let net = create(
            &mut conn,
            "networks",
            "network",
            json!({"name": format!("bench-{run}")}),
        )
        .await?;
        create(
            &mut conn,
            "subnets",
            "subnet",
            json!({"network_id": net, "ip_version": 4, "cidr": "10.0.0.0/16", "name": format!("bench-{run}")}),
        )
        .await?;
        networks.push(net.clone());
        parent = Some(net);
    } else {
        notes.push(
            "this server does not serve /v2.0/ports and /v2.0/subnets: network creates and \
             lists are measured instead, and binding updates are skipped"
                .into(),
        );
    }
    let item = |name: String| match &parent {
        Some(net) => json!({"port": {"network_id": net, "name": name}}),
        None => json!({"network": {"name": name}}),
    };

    // Creates.
    let mut created: Vec<(usize, Vec<String>)> = Vec::new();
    for &c in &opts.concurrency {
        let jobs = (0..opts.ports)
            .map(|i| Job {
                method: Method::POST,
                path: format!("/v2.0/{collection}"),
                body: Some(item(format!("bench-{run}-c{c}-{i}"))),
                expect: StatusCode::CREATED,
            })
            .collect();
        let (mut phase, answers) =
            run_phase(endpoint, &format!("{resource} create"), c, jobs, true).await?;
        if c == 16 && ports {
            let ok = phase.per_second() >= 5000.0 && phase.p99 <= Duration::from_millis(20);
            phase.target = Some(("≥ 5,000/s and p99 ≤ 20 ms".into(), ok));
        }
        phases.push(phase);
        let ids = answers
            .bodies
            .iter()
            .map(|b| id_of(b, resource))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if !ports {
            networks.extend(ids.iter().cloned());
        }
        created.push((c, ids));
    }

    // A list that returns exactly `list_size` items.
    let list_name = format!("bench-{run}-list");
    let (list_path, list_ids) = if ports {
        let net = create(&mut conn, "networks", "network", json!({"name": list_name})).await?;
        create(
            &mut conn,
            "subnets",
            "subnet",
            json!({"network_id": net, "ip_version": 4, "cidr": "10.1.0.0/16", "name": list_name}),
        )
        .await?;
        networks.push(net.clone());
        let ids = bulk_create(
            &mut conn,
            "ports",
            opts.list_size,
            |i| json!({"network_id": net, "name": format!("{list_name}-{i}")}),
        )
        .await?;
        (format!("/v2.0/ports?network_id={net}"), ids)
    } else {
        let ids = bulk_create(
            &mut conn,
            "networks",
            opts.list_size,
            |_| json!({"name": list_name}),
        )
        .await?;
        networks.extend(ids.iter().cloned());
        (format!("/v2.0/networks?name={list_name}"), ids)
    };
    let listed = conn.get(&list_path).await?;
    let listed_len = listed.body.len();
    let listed = listed.expect(StatusCode::OK, "list")?;
    let got = listed[collection].as_array().map_or(0, Vec::len);
    if got != opts.list_size {
        bail!(
            "GET {list_path}: expected {} {collection}, got {got}",
            opts.list_size
        );
    }
    let jobs = (0..opts.list_repeats)
        .map(|_| Job {
            method: Method::GET,
            path: list_path.clone(),
            body: None,
            expect: StatusCode::OK,
        })
        .collect();
    let (mut phase, answers) = run_phase(
        endpoint,
        &format!(
            "list {} {collection} (GET {})",
            opts.list_size,
            list_path.split('?').next().unwrap_or("")
        ),
        1,
        jobs,
        false,
    )
    .await?;
    // Nothing changes the list meanwhile, so every answer is as long as the checked one.
    if answers.lengths.iter().any(|len| *len != listed_len) {
        bail!(
            "a repeated list did not return {} {collection}",
            opts.list_size
        );
    }
    if ports && opts.list_size == 500 {
        phase.target = Some(("p50 ≤ 10 ms".into(), phase.p50 <= Duration::from_millis(10)));
    }
    phases.push(phase);

    // Binding updates: every port created above is bound once, at the concurrency it was
    // created with.
    if ports {
        match (agents, agent_token) {
            (true, Some(token)) => {
                // Reported just before the binds, so the agent is alive throughout them.
                let verdict = report_agent(&mut conn, token, &ovs_agent(&opts.host)).await?;
                notes.push(format!(
                    "binding: an Open vSwitch agent on {} reported itself ({verdict}) before the \
                     binds; the bundled drivers bind against it",
                    opts.host
                ));
            }
            (true, None) => notes.push(format!(
                "binding: no agent token of {} (--agent-token-file), so no agent was registered there: \
                 every bind ends in binding_failed (the drivers run, none binds)",
                opts.host
            )),
            (false, _) => notes.push(format!(
                "binding: this server has no agents API, so no agent lives on {} and every bind \
                 ends in binding_failed",
                opts.host
            )),
        }
        for (c, ids) in &created {
            let jobs = ids
                .iter()
                .map(|id| Job {
                    method: Method::PUT,
                    path: format!("/v2.0/ports/{id}"),
                    body: Some(json!({"port": {"binding:host_id": opts.host}})),
                    expect: StatusCode::OK,
                })
                .collect();
            let (phase, answers) =
                run_phase(endpoint, "port binding update", *c, jobs, true).await?;
            let mut vif_types: Vec<String> = answers
                .bodies
                .iter()
                .map(|b| {
                    b["port"]["binding:vif_type"]
                        .as_str()
                        .unwrap_or("(none)")
                        .to_string()
                })
                .collect();
            vif_types.sort();
            vif_types.dedup();
            notes.push(format!(
                "binding at concurrency {c}: binding:vif_type after the update: {}",
                vif_types.join(", ")
            ));
            phases.push(phase);
        }
    }

    // Clean up (and measure it): every item created, then the networks that held ports.
    let mut doomed: Vec<String> = created.into_iter().flat_map(|(_, ids)| ids).collect();
    if ports {
        doomed.extend(list_ids);
    }
    if ports {
        let jobs = doomed
            .iter()
            .map(|id| Job {
                method: Method::DELETE,
                path: format!("/v2.0/ports/{id}"),
                body: None,
                expect: StatusCode::NO_CONTENT,
            })
            .collect();
        phases.push(
            run_phase(endpoint, "port delete", max_concurrency, jobs, false)
                .await?
                .0,
        );
    }
    let jobs = networks
        .iter()
        .map(|id| Job {
            method: Method::DELETE,
            path: format!("/v2.0/networks/{id}"),
            body: None,
            expect: StatusCode::NO_CONTENT,
        })
        .collect();
    let (phase, _) = run_phase(endpoint, "network delete", max_concurrency, jobs, false).await?;
    if !ports {
        phases.push(phase);
    }
    Ok((phases, notes))
}

/// A few random bits to keep names of different runs apart (no clock-free randomness needed).
fn rand_u32() -> u32 {
    uuid::Uuid::new_v4().as_u128() as u32
}

/// Runs the whole benchmark: starts a server unless `--url` was given, measures, stops it.
pub fn run_api(opts: &ApiBenchOptions) -> anyhow::Result<Report> {
    if opts.concurrency.is_empty() || opts.concurrency.contains(&0) {
        bail!("--concurrency needs levels of at least 1");
    }
    if opts.ports == 0 || opts.list_size == 0 || opts.list_repeats == 0 {
        bail!("--ports, --list-size and --list-repeats must be at least 1");
    }
    // The load generator: one thread, as a separate client process would have.
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut server = None;
    let (endpoint, description) = match &opts.url {
        Some(url) => (
            client.block_on(Endpoint::parse(url))?,
            format!("{url} (external server)"),
        ),
        None => {
            let s = InProcessServer::start(opts.database.clone(), &opts.host)?;
            let description = format!(
                "{} (in-process server, database {})",
                s.endpoint.url(),
                s.database
            );
            let endpoint = s.endpoint.clone();
            server = Some(s);
            (endpoint, description)
        }
    };
    let token = match (&server, &opts.agent_token_file) {
        (Some(s), _) => Some(s.agent_token.clone()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("agent token file {}", path.display()))?
                .trim()
                .to_string(),
        ),
        (None, None) => None,
    };
    let load = load_average();
    let result = client.block_on(measure(&endpoint, opts, token.as_deref()));
    if let Some(s) = server {
        s.stop()?;
    }
    let (phases, mut notes) = result?;
    let mut first = machine_notes(load);
    first.append(&mut notes);
    let notes = first;
    Ok(Report {
        server: description,
        notes,
        phases,
    })
}

/// The router of `neutrino serve` on 127.0.0.1:<free port>, on its own runtime and thread.
struct InProcessServer {
    endpoint: Endpoint,
    database: String,
    agent_token: String,
    shutdown: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl InProcessServer {
    /// `host`'s agent is given a credential of its own, as `neutrino agent enroll` does.
    fn start(database: Option<String>, host: &str) -> anyhow::Result<InProcessServer> {
        let dir = tempfile::tempdir()?;
        let options = ServeOptions {
            listen: "127.0.0.1:0".parse()?,
            database,
            data_dir: dir.path().to_path_buf(),
            agent_token_file: None,
            shared_agent_token: false,
            api: ApiConfig::default(),
        };
        let database = options.database_url();
        let host = host.to_string();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || -> anyhow::Result<()> {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let started = async {
                    let state = state(&options).await?;
                    let token = neutrino_api::internal::enroll(&state.store, &host).await?;
                    let router = neutrino_api::router(state);
                    let listener = tokio::net::TcpListener::bind(options.listen).await?;
                    anyhow::Ok((router, listener, token))
                };
                let (router, listener, token) = match started.await {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("{e:#}")));
                        return Err(e);
                    }
                };
                let _ = ready_tx.send(Ok((listener.local_addr()?, token)));
                axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = shutdown_rx.await;
                    })
                    .await?;
                Ok(())
            })
        });
        let (addr, agent_token) = ready_rx
            .recv()
            .context("the in-process server thread died")?
            .map_err(|e| anyhow::anyhow!("in-process server: {e}"))?;
        Ok(InProcessServer {
            endpoint: Endpoint::from_addr(addr),
            database,
            agent_token,
            shutdown,
            thread,
            _dir: dir,
        })
    }

    fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(());
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the in-process server panicked"))?
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "neutrino bench api: {}", self.server)?;
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        writeln!(f)?;
        let width = self
            .phases
            .iter()
            .map(|p| p.operation.chars().count())
            .max()
            .unwrap_or(9)
            .max(9);
        writeln!(
            f,
            "{:<width$}  {:>4}  {:>8}  {:>10}  {:>9}  {:>9}  target",
            "operation", "conc", "requests", "per second", "p50", "p99"
        )?;
        for p in &self.phases {
            let target = match &p.target {
                Some((t, true)) => format!("{t}: met"),
                Some((t, false)) => format!("{t}: NOT MET"),
                None => String::new(),
            };
            writeln!(
                f,
                "{:<width$}  {:>4}  {:>8}  {:>10.1}  {:>9}  {:>9}  {target}",
                p.operation,
                p.concurrency,
                p.requests,
                p.per_second(),
                ms(p.p50),
                ms(p.p99),
            )?;
        }
        writeln!(f)?;
        write!(
            f,
            "For reference, upstream Neutron (published Rally runs): about 7 port creates/s, and about 320 ms to list 500 ports."
        )
    }
}

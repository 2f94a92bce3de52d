//! `neutrino bench fairness` and `neutrino bench networks` (issue 12): what one project's
//! biggest requests cost another project, and what a network create costs as networks grow.
//!
//! Both start `neutrino serve --no-agent` as a child process (SQLite in a temporary directory,
//! or `--database`), or drive `--url`, over real HTTP with the noauth identity headers.
//!
//! Fairness: a member of the victim project creates single ports (or networks) one after
//! another on an idle server, then again while members of the attacker project (quotas
//! lifted, the worst case) send, on several connections at once, the biggest requests the
//! limits allow: bulk port creates filling the 112 KiB body limit, bulk creates of ports
//! with the most address pairs and DHCP options allowed, one port with as many DHCP options as
//! fit, bulk network creates filling the body, and port lists with a filter list filling the
//! 64 KiB head. The victim runs on a thread and client of its own. It prints the victim's p50/p99 of both runs and the ratio of the p99s against
//! the target (within 2x).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::client::{Connection, Endpoint};
use super::phase::{load_average, machine_notes, ms, percentile};
use super::server::ChildServer;

/// The body limit of `neutrino serve` (Neutron's `max_request_body_size`).
const BODY_LIMIT: usize = neutrino_api::MAX_REQUEST_BODY;
/// What a request head may hold (request line and headers), with room for the headers.
const HEAD_ROOM: usize = 60 * 1024;
const VICTIM: &str = "bench-victim";
const ATTACKER: &str = "bench-attacker";
/// The fairness target: the victim's p99 under attack within this factor of the idle one.
const TARGET_RATIO: f64 = 2.0;

#[derive(Debug, Clone)]
pub struct FairnessOptions {
    pub url: Option<String>,
    pub database: Option<String>,
    /// The victim's single creates per run.
    pub samples: usize,
    /// Attacker connections, each sending its biggest requests one after another.
    pub attackers: usize,
    /// What the victim creates: `ports` or `networks`.
    pub victim_creates: String,
    /// Only the attacks whose name holds this.
    pub attack: Option<String>,
}

impl Default for FairnessOptions {
    fn default() -> Self {
        FairnessOptions {
            url: None,
            database: None,
            samples: 2000,
            attackers: 4,
            victim_creates: "ports".into(),
            attack: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FairnessReport {
    pub server: String,
    pub notes: Vec<String>,
    pub idle: (Duration, Duration),
    pub attacked: (Duration, Duration),
    pub victim_failures: BTreeMap<String, usize>,
    /// Per kind of attacker request: how many were answered, by status, and their p50.
    pub attacks: BTreeMap<String, (BTreeMap<u16, usize>, Duration)>,
}

impl FairnessReport {
    pub fn ratio(&self) -> f64 {
        self.attacked.1.as_secs_f64() / self.idle.1.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for FairnessReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "neutrino bench fairness: {}", self.server)?;
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        writeln!(
            f,
            "  victim idle:         p50 {:>10}  p99 {:>10}",
            ms(self.idle.0),
            ms(self.idle.1)
        )?;
        writeln!(
            f,
            "  victim under attack: p50 {:>10}  p99 {:>10}",
            ms(self.attacked.0),
            ms(self.attacked.1)
        )?;
        let ratio = self.ratio();
        writeln!(
            f,
            "  p99 ratio {ratio:.2}x (target within {TARGET_RATIO}x): {}",
            if ratio <= TARGET_RATIO {
                "met"
            } else {
                "MISSED"
            }
        )?;
        if !self.victim_failures.is_empty() {
            writeln!(f, "  victim failures: {:?}", self.victim_failures)?;
        }
        for (kind, (statuses, p50)) in &self.attacks {
            writeln!(f, "  attack {kind}: answers {statuses:?}, p50 {}", ms(*p50))?;
        }
        Ok(())
    }
}

/// Headers of a member of `project`.
fn member(project: &str) -> [(&'static str, &str); 2] {
    [("x-project-id", project), ("x-roles", "member")]
}

/// A started child server or an external one, and what to call it.
struct Target {
    endpoint: Endpoint,
    description: String,
    server: Option<ChildServer>,
}

fn target(
    client: &tokio::runtime::Runtime,
    url: Option<&str>,
    database: Option<&str>,
) -> anyhow::Result<Target> {
    Ok(match url {
        Some(url) => Target {
            endpoint: client.block_on(Endpoint::parse(url))?,
            description: format!("{url} (external server)"),
            server: None,
        },
        None => {
            let s = ChildServer::start(database)?;
            Target {
                endpoint: Endpoint::from_addr(s.addr),
                description: format!(
                    "http://{} (`neutrino serve --no-agent`, child process {}, database {})",
                    s.addr,
                    s.pid(),
                    s.database
                ),
                server: Some(s),
            }
        }
    })
}

/// Stops a started server; an error says what its log said if it died.
fn finish<T>(result: anyhow::Result<T>, server: Option<ChildServer>) -> anyhow::Result<T> {
    match (result, server) {
        (Ok(r), Some(s)) => s.stop().map(|_| r),
        (Err(e), Some(mut s)) => match s.exited() {
            Some(status) => Err(e.context(format!(
                "the server exited ({status}); its log ends with:\n{}",
                s.log_tail()
            ))),
            None => Err(e),
        },
        (r, None) => r,
    }
}

/// `POST`s `body` as `project`'s member; the created resource's id.
async fn create_as(
    conn: &mut Connection,
    project: &str,
    collection: &str,
    resource: &str,
    body: Value,
) -> anyhow::Result<String> {
    let r = conn
        .request_with(
            Method::POST,
            &format!("/v2.0/{collection}"),
            &member(project),
            Some(&json!({ resource: body })),
        )
        .await?;
    let b = r.expect(StatusCode::CREATED, &format!("POST /v2.0/{collection}"))?;
    b[resource]["id"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no id in {b}"))
}

/// Lifts `project`'s quotas (as the default admin); a server without quotas is left alone.
async fn lift_quotas_of(conn: &mut Connection, project: &str) -> anyhow::Result<()> {
    let unlimited = json!({"quota": {"network": -1, "subnet": -1, "port": -1}});
    let r = conn
        .request(
            Method::PUT,
            &format!("/v2.0/quotas/{project}"),
            Some(&unlimited),
        )
        .await?;
    if r.status != StatusCode::OK && r.status != StatusCode::NOT_FOUND {
        bail!("PUT /v2.0/quotas/{project}: HTTP {}", r.status);
    }
    Ok(())
}

/// The biggest bulk of `item(i)` whose body `{"<collection>": [...]}` fits the body limit.
fn fill_body(collection: &str, item: impl Fn(usize) -> Value) -> Value {
    let mut items = Vec::new();
    let mut size = collection.len() + 8;
    loop {
        let next = item(items.len());
        let len = serde_json::to_vec(&next).map_or(usize::MAX, |v| v.len()) + 1;
        if size + len > BODY_LIMIT - 64 {
            break;
        }
        size += len;
        items.push(next);
    }
    json!({ collection: items })
}

/// The attacker's requests, by kind: method, path, body.
fn attacks(network: &str) -> Vec<(&'static str, Method, String, Option<Value>)> {
    let pairs: Vec<Value> = (0..10)
        .map(|i| json!({"ip_address": format!("172.16.{i}.0/24")}))
        .collect();
    let opt = |i: usize| json!({"opt_name": format!("{:0>64}", i), "opt_value": "v".repeat(255), "ip_version": 4});
    let bulk_ports = fill_body("ports", |_| json!({ "network_id": network }));
    let bulk_rich = fill_body("ports", |i| {
        json!({ "network_id": network, "allowed_address_pairs": pairs,
            "extra_dhcp_opts": (0..2).map(|k| opt(i * 2 + k)).collect::<Vec<_>>() })
    });
    let opts = fill_body("extra_dhcp_opts", opt);
    let one_rich =
        json!({"port": {"network_id": network, "extra_dhcp_opts": opts["extra_dhcp_opts"]}});
    let bulk_networks = fill_body("networks", |_| json!({}));
    let mut filter = String::from("/v2.0/ports?fields=id");
    while filter.len() < HEAD_ROOM - 50 {
        filter.push_str(&format!("&id={}", uuid::Uuid::new_v4()));
    }
    vec![
        (
            "bulk ports",
            Method::POST,
            "/v2.0/ports".into(),
            Some(bulk_ports),
        ),
        (
            "bulk ports with 10 address pairs and 2 DHCP options",
            Method::POST,
            "/v2.0/ports".into(),
            Some(bulk_rich),
        ),
        (
            "one port with most DHCP options",
            Method::POST,
            "/v2.0/ports".into(),
            Some(one_rich),
        ),
        (
            "bulk networks",
            Method::POST,
            "/v2.0/networks".into(),
            Some(bulk_networks),
        ),
        (
            "port list with an id filter list",
            Method::GET,
            filter,
            None,
        ),
    ]
}

pub fn run_fairness(opts: &FairnessOptions) -> anyhow::Result<FairnessReport> {
    if opts.samples == 0 || opts.attackers == 0 {
        bail!("--samples and --attackers must be at least 1");
    }
    if !["ports", "networks"].contains(&opts.victim_creates.as_str()) {
        bail!("--victim-creates: ports or networks");
    }
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let notes = machine_notes(load_average());
    let t = target(&client, opts.url.as_deref(), opts.database.as_deref())?;
    eprintln!("neutrino bench fairness: {}", t.description);
    let result = client.block_on(fairness(&t.endpoint, opts));
    let (idle, attacked, victim_failures, attacks) = finish(result, t.server)?;
    Ok(FairnessReport {
        server: t.description,
        notes,
        idle,
        attacked,
        victim_failures,
        attacks,
    })
}

/// One kind of attacker request's answers: count by status, and latencies.
type Answers = (BTreeMap<u16, usize>, Vec<Duration>);

type Fairness = (
    (Duration, Duration),
    (Duration, Duration),
    BTreeMap<String, usize>,
    BTreeMap<String, (BTreeMap<u16, usize>, Duration)>,
);

async fn fairness(endpoint: &Endpoint, opts: &FairnessOptions) -> anyhow::Result<Fairness> {
    let mut admin = Connection::open(endpoint).await?;
    lift_quotas_of(&mut admin, ATTACKER).await?;
    lift_quotas_of(&mut admin, VICTIM).await?;
    let victim_net = create_as(&mut admin, VICTIM, "networks", "network", json!({})).await?;
    create_as(
        &mut admin,
        VICTIM,
        "subnets",
        "subnet",
        json!({"network_id": victim_net, "ip_version": 4, "cidr": "192.168.0.0/16"}),
    )
    .await?;
    let attacker_net = create_as(&mut admin, ATTACKER, "networks", "network", json!({})).await?;
    create_as(
        &mut admin,
        ATTACKER,
        "subnets",
        "subnet",
        json!({"network_id": attacker_net, "ip_version": 4, "cidr": "10.0.0.0/8"}),
    )
    .await?;
    let idle = victim_in_thread(endpoint, opts, &victim_net, Duration::ZERO, None)
        .join()
        .map_err(|_| anyhow::anyhow!("the victim's thread panicked"))??;
    eprintln!(
        "idle: p50 {} p99 {}; now with {} attackers",
        ms(idle.0.0),
        ms(idle.0.1),
        opts.attackers
    );

    let mut kinds = attacks(&attacker_net);
    if let Some(only) = &opts.attack {
        kinds.retain(|(kind, ..)| kind.contains(only.as_str()));
        if kinds.is_empty() {
            bail!("--attack {only:?}: no attack by that name");
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let answers: RefCell<BTreeMap<String, Answers>> = RefCell::new(BTreeMap::new());
    let mut attackers = Vec::new();
    for _ in 0..opts.attackers {
        attackers.push(Connection::open(endpoint).await?);
    }
    // The attack under way first (every attacker has a request in the server), then the
    // victim, on a thread and client of its own: a client reading the attacker's big answers
    // would delay the victim's as much as the server does.
    let victim = victim_in_thread(
        endpoint,
        opts,
        &victim_net,
        Duration::from_millis(500),
        Some(stop.clone()),
    );
    // The attackers' client stands for clients on other machines: on this one it yields the
    // cores to the server and the victim's client (Linux: the calling thread's nice value).
    if let Err(e) = rustix::process::setpriority_process(None, 19) {
        eprintln!("cannot lower the attackers' client priority: {e}");
    }
    let (kinds, stop_ref, answers_ref) = (&kinds, &stop, &answers);
    futures_util::future::try_join_all(attackers.into_iter().enumerate().map(
        |(w, mut conn)| async move {
            let mut i = w;
            while !stop_ref.load(Ordering::Relaxed) {
                let (kind, method, path, body) = &kinds[i % kinds.len()];
                i += 1;
                let t = Instant::now();
                let r = conn
                    .request_with(method.clone(), path, &member(ATTACKER), body.as_ref())
                    .await?;
                let mut a = answers_ref.borrow_mut();
                let entry = a.entry((*kind).to_string()).or_default();
                *entry.0.entry(r.status.as_u16()).or_default() += 1;
                entry.1.push(t.elapsed());
            }
            anyhow::Ok(())
        },
    ))
    .await?;
    let (attacked, mut failures) = victim
        .join()
        .map_err(|_| anyhow::anyhow!("the victim's thread panicked"))??;
    for (kind, n) in idle.1 {
        *failures.entry(kind).or_default() += n;
    }
    let attacks = answers
        .into_inner()
        .into_iter()
        .map(|(kind, (statuses, mut latencies))| {
            latencies.sort();
            (kind, (statuses, percentile(&latencies, 50)))
        })
        .collect();
    Ok((idle.0, attacked, failures, attacks))
}

/// The victim's latencies (p50, p99) and failures by kind.
type VictimRun = ((Duration, Duration), BTreeMap<String, usize>);

/// The victim's run on a thread with its own client, after `delay`; sets `done` when over.
fn victim_in_thread(
    endpoint: &Endpoint,
    opts: &FairnessOptions,
    network: &str,
    delay: Duration,
    done: Option<Arc<AtomicBool>>,
) -> std::thread::JoinHandle<anyhow::Result<VictimRun>> {
    let (endpoint, opts, network) = (endpoint.clone(), opts.clone(), network.to_string());
    std::thread::spawn(move || {
        let run = async {
            tokio::time::sleep(delay).await;
            let mut conn = Connection::open(&endpoint).await?;
            let failures = RefCell::new(BTreeMap::new());
            let latencies = victim_run(&mut conn, &opts, &network, &failures).await?;
            anyhow::Ok((latencies, failures.into_inner()))
        };
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|client| client.block_on(run));
        if let Some(done) = done {
            done.store(true, Ordering::Relaxed);
        }
        result
    })
}

/// The victim's single creates, one after another: p50 and p99.
async fn victim_run(
    conn: &mut Connection,
    opts: &FairnessOptions,
    network: &str,
    failures: &RefCell<BTreeMap<String, usize>>,
) -> anyhow::Result<(Duration, Duration)> {
    let mut latencies = Vec::with_capacity(opts.samples);
    for _ in 0..opts.samples {
        let (path, body) = if opts.victim_creates == "ports" {
            ("/v2.0/ports", json!({"port": {"network_id": network}}))
        } else {
            ("/v2.0/networks", json!({"network": {}}))
        };
        let t = Instant::now();
        let r = conn
            .request_with(Method::POST, path, &member(VICTIM), Some(&body))
            .await?;
        latencies.push(t.elapsed());
        if r.status != StatusCode::CREATED {
            *failures
                .borrow_mut()
                .entry(super::phase::failure_kind(&r))
                .or_default() += 1;
        }
    }
    latencies.sort();
    Ok((percentile(&latencies, 50), percentile(&latencies, 99)))
}

#[derive(Debug, Clone)]
pub struct NetworksOptions {
    pub url: Option<String>,
    pub database: Option<String>,
    /// Numbers of networks at which single creates are timed.
    pub checkpoints: Vec<usize>,
    /// Single network creates timed at each checkpoint.
    pub creates: usize,
    /// Networks per bulk create of the fill.
    pub bulk_size: usize,
}

impl Default for NetworksOptions {
    fn default() -> Self {
        NetworksOptions {
            url: None,
            database: None,
            checkpoints: vec![0, 10_000, 50_000],
            creates: 200,
            bulk_size: 1000,
        }
    }
}

/// At one checkpoint: single creates' mean and p99, and the fill's time per 1,000 networks.
#[derive(Debug, Clone)]
pub struct NetworksRow {
    pub at: usize,
    pub mean: Duration,
    pub p99: Duration,
    pub fill_per_1000: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct NetworksReport {
    pub server: String,
    pub notes: Vec<String>,
    pub rows: Vec<NetworksRow>,
}

impl fmt::Display for NetworksReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "neutrino bench networks: {}", self.server)?;
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        writeln!(
            f,
            "  {:>9}  {:>16}  {:>12}  {:>26}",
            "networks", "create mean", "create p99", "bulk fill, per 1,000"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "  {:>9}  {:>16}  {:>12}  {:>26}",
                r.at,
                ms(r.mean),
                ms(r.p99),
                r.fill_per_1000.map_or("-".into(), ms)
            )?;
        }
        Ok(())
    }
}

pub fn run_networks(opts: &NetworksOptions) -> anyhow::Result<NetworksReport> {
    if opts.creates == 0 || opts.bulk_size == 0 {
        bail!("--creates and --bulk-size must be at least 1");
    }
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let notes = machine_notes(load_average());
    let t = target(&client, opts.url.as_deref(), opts.database.as_deref())?;
    eprintln!("neutrino bench networks: {}", t.description);
    let result = client.block_on(networks(&t.endpoint, opts));
    let rows = finish(result, t.server)?;
    Ok(NetworksReport {
        server: t.description,
        notes,
        rows,
    })
}

async fn networks(endpoint: &Endpoint, opts: &NetworksOptions) -> anyhow::Result<Vec<NetworksRow>> {
    let mut conn = Connection::open(endpoint).await?;
    lift_quotas_of(&mut conn, VICTIM).await?;
    let mut checkpoints = opts.checkpoints.clone();
    checkpoints.sort_unstable();
    checkpoints.dedup();
    let mut made = 0;
    let mut rows = Vec::new();
    for at in checkpoints {
        let mut fill = None;
        if at > made {
            let (start, before) = (Instant::now(), made);
            while made < at {
                let n = opts.bulk_size.min(at - made);
                let body = json!({"networks": vec![json!({}); n]});
                let r = conn
                    .request_with(Method::POST, "/v2.0/networks", &member(VICTIM), Some(&body))
                    .await?;
                r.expect(StatusCode::CREATED, "bulk network create")?;
                made += n;
            }
            fill = Some(start.elapsed().mul_f64(1000.0 / (made - before) as f64));
        }
        let mut latencies = Vec::with_capacity(opts.creates);
        for _ in 0..opts.creates {
            let t = Instant::now();
            let r = conn
                .request_with(
                    Method::POST,
                    "/v2.0/networks",
                    &member(VICTIM),
                    Some(&json!({"network": {}})),
                )
                .await?;
            latencies.push(t.elapsed());
            r.expect(StatusCode::CREATED, "network create")?;
        }
        made += opts.creates;
        let mean = latencies.iter().sum::<Duration>() / latencies.len() as u32;
        latencies.sort();
        let row = NetworksRow {
            at,
            mean,
            p99: percentile(&latencies, 99),
            fill_per_1000: fill,
        };
        eprintln!(
            "at {at} networks: create mean {} p99 {}",
            ms(row.mean),
            ms(row.p99)
        );
        rows.push(row);
    }
    Ok(rows)
}

//! `neutrino bench scale`: the API with a million ports in the database.
//!
//! It starts a real `neutrino serve` as a child process (so its memory can be read from
//! `/proc`), or drives one at `--url`. It makes `--networks` networks with a /16 IPv4 subnet
//! each, fills them with ports through bulk creates (`POST /v2.0/ports` with `{"ports": [...]}`,
//! several in flight), and at each checkpoint (a number of ports in the database) measures the
//! reads a cloud does all the time, single and bulk creates, the full unfiltered list, and the
//! server's memory, each against its target. Failures are counted and shown, never retried.
//! It knows the API only as HTTP.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use anyhow::bail;
use axum::http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{Connection, Endpoint, Response};
use super::create;
use super::phase::{
    Job, Run, failure_kind, load_average, machine_notes, ms, percentile, run_requests,
};
use super::server::{ChildServer, memory};

#[derive(Debug, Clone)]
pub struct ScaleBenchOptions {
    /// Drive this server instead of starting one.
    pub url: Option<String>,
    /// With `url`: the server's process, whose memory is then read.
    pub server_pid: Option<u32>,
    /// `--database` of the started server (default: SQLite in its temporary data directory).
    pub database: Option<String>,
    /// Ports in the database at the end.
    pub ports: usize,
    /// Networks the ports are spread over.
    pub networks: usize,
    /// Numbers of ports at which to measure (`ports` is always the last).
    pub checkpoints: Vec<usize>,
    /// Single creates in flight.
    pub concurrency: usize,
    /// Single creates measured at each checkpoint (and on the empty database).
    pub creates: usize,
    /// Ports per bulk create of the fill.
    pub bulk_size: usize,
    /// Bulk creates in flight during the fill.
    pub fill_concurrency: usize,
    /// Requests per timed read (a port by id: five times as many).
    pub repeats: usize,
}

impl Default for ScaleBenchOptions {
    fn default() -> Self {
        ScaleBenchOptions {
            url: None,
            server_pid: None,
            database: None,
            ports: 1_000_000,
            networks: 100,
            checkpoints: vec![10_000, 100_000, 1_000_000],
            concurrency: 16,
            creates: 2000,
            bulk_size: 1000,
            fill_concurrency: 4,
            repeats: 200,
        }
    }
}

/// Ports on the network whose ports are listed.
const LIST_SIZE: usize = 500;
/// How long a timed read may go on, once it has made at least `READ_MIN` requests.
const READ_BUDGET: Duration = Duration::from_secs(15);
const READ_MIN: usize = 10;
const TEN_MS: Duration = Duration::from_millis(10);
const MB: f64 = 1024.0 * 1024.0;

/// What must hold for the answer to the `i`th request of a timed read.
type Check<'a> = dyn Fn(usize, &Value) -> bool + 'a;

/// One line of a checkpoint's table.
#[derive(Debug, Clone)]
pub struct Row {
    pub what: String,
    pub figure: String,
    /// The figure in a few characters, for the summary across checkpoints.
    pub short: String,
    /// The target and whether it was met.
    pub target: Option<(String, bool)>,
}

#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The checkpoint asked for (0: the empty database).
    pub at: usize,
    /// Ports this bench has in the database when it measured.
    pub ports: usize,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone)]
pub struct ScaleReport {
    pub server: String,
    pub notes: Vec<String>,
    pub checkpoints: Vec<Checkpoint>,
}

/// What a bulk create's answer says of its ports, read without building the whole JSON tree.
#[derive(Deserialize)]
struct BulkAnswer {
    ports: Vec<AnswerPort>,
}

#[derive(Deserialize)]
struct CreateAnswer {
    port: AnswerPort,
}

#[derive(Deserialize)]
struct AnswerPort {
    id: String,
    #[serde(default)]
    device_id: String,
    #[serde(default)]
    fixed_ips: Vec<FixedIp>,
}

#[derive(Deserialize)]
struct FixedIp {
    ip_address: String,
}

impl AnswerPort {
    fn sample(self) -> Sample {
        Sample {
            id: self.id,
            device_id: self.device_id,
            ip: self.fixed_ips.into_iter().next().map(|f| f.ip_address),
        }
    }
}

/// A port whose id, device and address the reads look up.
#[derive(Debug, Clone)]
struct Sample {
    id: String,
    device_id: String,
    ip: Option<String>,
}

/// What became of one bulk create: ports created and one of them, or why it failed.
type BulkResult = Result<(usize, Option<Sample>), String>;

/// The fill up to one checkpoint.
struct Fill {
    requests: usize,
    ports: usize,
    wall: Duration,
    p50: Duration,
    p99: Duration,
    failures: BTreeMap<String, usize>,
}

/// The state of a run against one server.
struct Bench<'a> {
    endpoint: &'a Endpoint,
    opts: &'a ScaleBenchOptions,
    /// Whose memory to read.
    pid: Option<u32>,
    run: String,
    networks: Vec<String>,
    list_network: String,
    /// Ports this bench created (the database holds these, plus any a `--url` server had).
    ports: usize,
    /// Global index of the next port's name.
    next_port: usize,
    samples: Vec<Sample>,
    empty_create_rate: Option<f64>,
}

/// Runs the whole benchmark; prints each checkpoint's table as it is measured and returns them
/// all.
pub fn run_scale(opts: &ScaleBenchOptions) -> anyhow::Result<ScaleReport> {
    if opts.ports == 0 || opts.networks == 0 {
        bail!("--ports and --networks must be at least 1");
    }
    if opts.networks > 10_000 {
        bail!("--networks: at most 10,000 (each has its own /16 subnet)");
    }
    if opts.ports / opts.networks > 60_000 {
        bail!(
            "{} ports on {} networks do not fit in their /16 subnets: give more --networks",
            opts.ports,
            opts.networks
        );
    }
    if [
        opts.concurrency,
        opts.creates,
        opts.bulk_size,
        opts.fill_concurrency,
        opts.repeats,
    ]
    .contains(&0)
    {
        bail!(
            "--concurrency, --creates, --bulk-size, --fill-concurrency and --repeats must be at least 1"
        );
    }
    if let Some(c) = opts
        .checkpoints
        .iter()
        .find(|c| **c == 0 || **c > opts.ports)
    {
        bail!("checkpoint {c} is not within 1..={} (--ports)", opts.ports);
    }
    let mut checkpoints = opts.checkpoints.clone();
    checkpoints.push(opts.ports);
    checkpoints.sort_unstable();
    checkpoints.dedup();

    // The load generator: one thread, as a separate client process would have.
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let load = load_average();
    let mut notes = machine_notes(load);
    let mut server = None;
    let (endpoint, description, pid) = match &opts.url {
        Some(url) => {
            if opts.server_pid.is_none() {
                notes.push(
                    "the server's memory is not measured: give its process id with --server-pid"
                        .into(),
                );
            }
            notes.push(
                "external server: the port counts are of the ports this bench created; the \
                 database may hold more, and they stay there after the run"
                    .into(),
            );
            (
                client.block_on(Endpoint::parse(url))?,
                format!("{url} (external server)"),
                opts.server_pid,
            )
        }
        None => {
            let s = ChildServer::start(opts.database.as_deref())?;
            let description = format!(
                "http://{} (`neutrino serve --no-agent`, child process {}, database {})",
                s.addr,
                s.pid(),
                s.database
            );
            if opts.database.is_some() {
                notes.push(
                    "the ports stay in the given database after the run: give a fresh database \
                     to each run"
                        .into(),
                );
            }
            let r = (Endpoint::from_addr(s.addr), description, Some(s.pid()));
            server = Some(s);
            r
        }
    };
    println!("neutrino bench scale: {description}");
    for n in &notes {
        println!("  note: {n}");
    }
    println!();
    let result = client.block_on(measure(&endpoint, opts, pid, &checkpoints));
    let result = match (result, server) {
        (Ok(c), Some(s)) => s.stop().map(|_| c),
        (Err(e), Some(mut s)) => match s.exited() {
            Some(status) => Err(e.context(format!(
                "the server exited ({status}); its log ends with:\n{}",
                s.log_tail()
            ))),
            None => Err(e),
        },
        (r, None) => r,
    };
    Ok(ScaleReport {
        server: description,
        notes,
        checkpoints: result?,
    })
}

async fn measure(
    endpoint: &Endpoint,
    opts: &ScaleBenchOptions,
    pid: Option<u32>,
    checkpoints: &[usize],
) -> anyhow::Result<Vec<Checkpoint>> {
    let mut conn = Connection::open(endpoint).await?;
    conn.get("/")
        .await?
        .expect(StatusCode::OK, "GET / (versions)")?;
    if !super::client::serves(&mut conn, "ports").await? {
        bail!("this server does not serve /v2.0/ports");
    }
    if let Some(note) = super::client::lift_quotas(&mut conn).await? {
        eprintln!("{note}");
    }
    let run = format!("{:08x}", uuid::Uuid::new_v4().as_u128() as u32);
    let mut networks = Vec::with_capacity(opts.networks + 1);
    eprintln!(
        "making {} networks with a /16 subnet each",
        opts.networks + 1
    );
    for i in 0..=opts.networks {
        let name = format!("bench-scale-{run}-{i}");
        let net = create(&mut conn, "networks", "network", json!({ "name": name })).await?;
        let cidr = format!("{}.{}.0.0/16", 10 + i / 256, i % 256);
        create(
            &mut conn,
            "subnets",
            "subnet",
            json!({"network_id": net, "ip_version": 4, "cidr": cidr, "name": name}),
        )
        .await?;
        networks.push(net);
    }
    let list_network = networks.pop().expect("networks + 1 were made");
    let mut bench = Bench {
        endpoint,
        opts,
        pid,
        run,
        networks,
        list_network,
        ports: 0,
        next_port: 0,
        samples: Vec::new(),
        empty_create_rate: None,
    };

    let mut done = Vec::new();
    // Creates on the empty database, the figure later ones are held against.
    let empty = bench.empty_database().await?;
    println!("{empty}");
    done.push(empty);

    // The network whose ports are listed: exactly LIST_SIZE, in one bulk create.
    let body = json!({ "ports": (0..LIST_SIZE).map(|i| json!({
        "network_id": bench.list_network,
        "name": format!("bench-scale-{}-list-{i}", bench.run),
        "device_id": format!("bench-scale-{}-vm-list-{i}", bench.run),
    })).collect::<Vec<_>>() });
    let r = conn
        .request(Method::POST, "/v2.0/ports", Some(&body))
        .await?;
    let (_, sample) = bulk_result(0, LIST_SIZE, &r).map_err(|e| {
        anyhow::anyhow!(
            "bulk create of the listed network's {LIST_SIZE} ports: {e}: {}",
            String::from_utf8_lossy(&r.body)
        )
    })?;
    bench.samples.extend(sample);
    bench.ports += LIST_SIZE;

    for &at in checkpoints {
        let fill = bench.fill(at).await?;
        let checkpoint = bench.checkpoint(at, fill).await?;
        println!("{checkpoint}");
        done.push(checkpoint);
    }
    Ok(done)
}

impl Bench<'_> {
    async fn empty_database(&mut self) -> anyhow::Result<Checkpoint> {
        let mut rows = Vec::new();
        let (row, rate) = self.single_creates().await?;
        self.empty_create_rate = Some(rate);
        rows.push(row);
        rows.push(self.memory_row(None));
        Ok(Checkpoint {
            at: 0,
            ports: self.ports,
            rows,
        })
    }

    /// `opts.creates` single creates at `opts.concurrency`, over the networks in turn.
    async fn single_creates(&mut self) -> anyhow::Result<(Row, f64)> {
        let (n, c) = (self.opts.creates, self.opts.concurrency);
        let base = self.next_port;
        let run = run_requests(
            self.endpoint,
            c,
            n,
            |i| {
                Some(Job {
                    method: Method::POST,
                    path: "/v2.0/ports".into(),
                    body: Some(json!({"port": {
                        "network_id": self.networks[(base + i) % self.networks.len()],
                        "name": format!("bench-scale-{}-{}", self.run, base + i),
                        "device_id": format!("bench-scale-{}-vm-{}", self.run, base + i),
                    }})),
                    expect: StatusCode::CREATED,
                })
            },
            // Every 100th port created is one the reads may look up.
            |i, job, r| {
                if r.status != job.expect {
                    return Err(failure_kind(&r));
                }
                Ok((i % 100 == 0)
                    .then(|| serde_json::from_slice::<CreateAnswer>(&r.body).ok())
                    .flatten()
                    .map(|a| a.port.sample()))
            },
        )
        .await?;
        self.next_port += n;
        let failures = tally(run.outcomes.iter().filter_map(|o| o.value.clone().err()));
        self.samples.extend(
            run.outcomes
                .iter()
                .filter_map(|o| o.value.clone().ok().flatten()),
        );
        let created = n - run.failures();
        self.ports += created;
        let rate = created as f64 / run.wall.as_secs_f64();
        let l = run.latencies();
        let (p50, p99) = (percentile(&l, 50), percentile(&l, 99));
        let mut target = "≥ 5,000/s".to_string();
        let mut met = rate >= 5000.0 && failures.is_empty();
        if let Some(empty) = self.empty_create_rate {
            target = format!("{target} and ≥ 90 % of the empty database's {empty:.0}/s");
            met &= rate >= 0.9 * empty;
        }
        Ok((
            Row {
                what: format!("port create, single, concurrency {c}"),
                figure: format!(
                    "{rate:.0}/s, p50 {}, p99 {} ({} creates{})",
                    ms(p50),
                    ms(p99),
                    thousands(n),
                    failures_text(&failures)
                ),
                short: format!("{rate:.0}/s"),
                target: Some((target, met)),
            },
            rate,
        ))
    }

    /// Bulk creates until this bench's ports reach `at` (or the planned requests are all
    /// answered: failed ones are counted, not made up for).
    async fn fill(&mut self, at: usize) -> anyhow::Result<Fill> {
        let need = at.saturating_sub(self.ports);
        let bulk = self.opts.bulk_size;
        let requests = need.div_ceil(bulk);
        if requests == 0 {
            return Ok(Fill {
                requests: 0,
                ports: 0,
                wall: Duration::ZERO,
                p50: Duration::ZERO,
                p99: Duration::ZERO,
                failures: BTreeMap::new(),
            });
        }
        eprintln!(
            "filling to {at} ports: {requests} bulk creates of up to {bulk}, {} in flight",
            self.opts.fill_concurrency
        );
        let base = self.next_port;
        let answered = Cell::new(0usize);
        let progress_every = (requests / 10).max(1);
        let run: Run<BulkResult> = run_requests(
            self.endpoint,
            self.opts.fill_concurrency,
            requests,
            |i| {
                let first = base + i * bulk;
                let count = bulk.min(need - i * bulk);
                let network = &self.networks[(first / bulk) % self.networks.len()];
                let ports: Vec<Value> = (first..first + count)
                    .map(|g| {
                        // Short: a bulk of 1,000 must fit Neutron's 112 KiB request body.
                        json!({
                            "network_id": network,
                            "device_id": format!("vm-{}-{g}", self.run),
                        })
                    })
                    .collect();
                Some(Job {
                    method: Method::POST,
                    path: "/v2.0/ports".into(),
                    body: Some(json!({ "ports": ports })),
                    expect: StatusCode::CREATED,
                })
            },
            |i, job, r| {
                answered.set(answered.get() + 1);
                if answered.get().is_multiple_of(progress_every) {
                    eprintln!("  {} of {requests} bulk creates answered", answered.get());
                }
                let asked = job
                    .body
                    .as_ref()
                    .map_or(0, |b| b["ports"].as_array().map_or(0, Vec::len));
                bulk_result(i, asked, &r)
            },
        )
        .await?;
        self.next_port += need;
        let mut failures = BTreeMap::new();
        let mut ports = 0;
        for o in &run.outcomes {
            match &o.value {
                Ok((n, sample)) => {
                    ports += n;
                    self.samples.extend(sample.clone());
                }
                Err(kind) => *failures.entry(kind.clone()).or_insert(0) += 1,
            }
        }
        self.ports += ports;
        let l = run.latencies();
        Ok(Fill {
            requests,
            ports,
            wall: run.wall,
            p50: percentile(&l, 50),
            p99: percentile(&l, 99),
            failures,
        })
    }

    async fn checkpoint(&mut self, at: usize, fill: Fill) -> anyhow::Result<Checkpoint> {
        if self.samples.is_empty() {
            bail!("no create succeeded, so there is no port to look up");
        }
        let repeats = self.opts.repeats;
        let ports = self.ports;
        let mut rows = Vec::new();

        // The first page of all ports.
        let expected = self.ports.min(500);
        let path = "/v2.0/ports?limit=500".to_string();
        let got = count_listed(self.endpoint, &path).await?;
        if got < expected || got > 500 {
            bail!("GET {path}: {got} ports, expected {expected}");
        }
        rows.push(
            self.timed_reads(
                "port list, first page (GET /v2.0/ports?limit=500)",
                |_| path.clone(),
                repeats,
                TEN_MS,
                None,
            )
            .await?,
        );

        // One network's ports.
        let path = format!("/v2.0/ports?network_id={}", self.list_network);
        let got = count_listed(self.endpoint, &path).await?;
        if got != LIST_SIZE {
            bail!("GET {path}: {got} ports, expected {LIST_SIZE}");
        }
        rows.push(
            self.timed_reads(
                "one network's 500 ports (GET /v2.0/ports?network_id=)",
                |_| path.clone(),
                repeats,
                TEN_MS,
                None,
            )
            .await?,
        );

        // Lookups of ports spread over the whole database.
        let samples = self.samples.clone();
        rows.push(
            self.timed_reads(
                "a port by id (GET /v2.0/ports/<id>)",
                |i| format!("/v2.0/ports/{}", samples[i % samples.len()].id),
                repeats * 5,
                Duration::from_millis(1),
                Some(&|i, body| body["port"]["id"] == samples[i % samples.len()].id.as_str()),
            )
            .await?,
        );
        rows.push(
            self.timed_reads(
                "ports by device_id (GET /v2.0/ports?device_id=)",
                |i| {
                    format!(
                        "/v2.0/ports?device_id={}",
                        samples[i % samples.len()].device_id
                    )
                },
                repeats,
                TEN_MS,
                Some(&|i, body| only(body, &samples[i % samples.len()].id)),
            )
            .await?,
        );
        let with_ip: Vec<&Sample> = samples.iter().filter(|s| s.ip.is_some()).collect();
        if with_ip.is_empty() {
            bail!("no created port had an address");
        }
        rows.push(
            self.timed_reads(
                "ports by address (GET /v2.0/ports?fixed_ips=ip_address=)",
                |i| {
                    let ip = with_ip[i % with_ip.len()].ip.as_deref().unwrap_or_default();
                    format!("/v2.0/ports?fixed_ips=ip_address%3D{ip}")
                },
                repeats,
                TEN_MS,
                Some(&|i, body| only(body, &with_ip[i % with_ip.len()].id)),
            )
            .await?,
        );

        // The fill that led here.
        let rate = fill.ports as f64 / fill.wall.as_secs_f64().max(1e-9);
        rows.push(Row {
            what: format!(
                "port create, bulk of {} ({} in flight), the fill to here",
                self.opts.bulk_size, self.opts.fill_concurrency
            ),
            figure: if fill.requests == 0 {
                "none needed".into()
            } else {
                format!(
                    "{} requests, {} failed{}; {} ports at {rate:.0} ports/s; a request p50 {}, p99 {}",
                    fill.requests,
                    fill.failures.values().sum::<usize>(),
                    failures_text(&fill.failures),
                    thousands(fill.ports),
                    ms(fill.p50),
                    ms(fill.p99)
                )
            },
            short: if fill.requests == 0 {
                "-".into()
            } else {
                format!(
                    "{rate:.0}/s, {} failed",
                    fill.failures.values().sum::<usize>()
                )
            },
            target: (fill.requests > 0).then(|| ("0 failed".into(), fill.failures.is_empty())),
        });

        // Everything, as one answer.
        rows.push(self.memory_row(Some("before the full list")));
        rows.push(self.full_list().await?);
        rows.push(self.memory_row(None));

        // Creates, last: they add to the ports the lines above were measured with.
        rows.push(self.single_creates().await?.0);
        Ok(Checkpoint { at, ports, rows })
    }

    /// `n` GETs of `path(i)`, one at a time (fewer if they take longer than [`READ_BUDGET`]),
    /// judged against p50 ≤ `limit`; `check` (if any) must hold for every answer.
    async fn timed_reads(
        &self,
        what: &str,
        path: impl Fn(usize) -> String,
        n: usize,
        limit: Duration,
        check: Option<&Check<'_>>,
    ) -> anyhow::Result<Row> {
        let start = Instant::now();
        let run = run_requests(
            self.endpoint,
            1,
            n,
            |i| (i < READ_MIN || start.elapsed() < READ_BUDGET).then(|| Job::get(path(i))),
            // Checked between requests, outside their timing; bodies are not kept.
            |i, job, r| {
                if r.status != job.expect {
                    return Err(failure_kind(&r));
                }
                Ok(check.is_none_or(|check| r.json().is_ok_and(|b| check(i, &b))))
            },
        )
        .await?;
        let failures = tally(run.outcomes.iter().filter_map(|o| o.value.clone().err()));
        let wrong = run
            .outcomes
            .iter()
            .filter(|o| matches!(o.value, Ok(false)))
            .count();
        let l = run.latencies();
        let (p50, p99) = (percentile(&l, 50), percentile(&l, 99));
        Ok(Row {
            what: what.into(),
            figure: format!(
                "p50 {}, p99 {} ({} requests{}{}{})",
                ms(p50),
                ms(p99),
                run.outcomes.len(),
                if run.outcomes.len() < n {
                    format!(", cut at {} s", READ_BUDGET.as_secs())
                } else {
                    String::new()
                },
                failures_text(&failures),
                if wrong > 0 {
                    format!(", {wrong} WRONG answers")
                } else {
                    String::new()
                }
            ),
            short: ms(p50),
            target: Some((
                format!("p50 ≤ {} ms", limit.as_millis()),
                p50 <= limit && failures.is_empty() && wrong == 0,
            )),
        })
    }

    /// The full, unfiltered `GET /v2.0/ports`, read as it streams and not kept.
    async fn full_list(&self) -> anyhow::Result<Row> {
        let mut conn = Connection::open(self.endpoint).await?;
        let mut count = Counter::new(b"\"mac_address\"");
        let s = conn
            .get_streamed("/v2.0/ports", |chunk| count.feed(chunk))
            .await?;
        let what = "all ports, one answer (GET /v2.0/ports)".to_string();
        if s.status != StatusCode::OK {
            return Ok(Row {
                what,
                figure: format!("HTTP {} after {}", s.status, ms(s.total)),
                short: format!("HTTP {}", s.status.as_u16()),
                target: Some(("an answer".into(), false)),
            });
        }
        let complete = count.found >= self.ports;
        Ok(Row {
            what,
            figure: format!(
                "{:.2} s, {:.1} MB, {} ports; headers after {}, first bytes after {}",
                s.total.as_secs_f64(),
                s.bytes as f64 / MB,
                thousands(count.found),
                ms(s.headers),
                s.first_byte.map_or("-".into(), ms)
            ),
            short: format!("{:.2} s", s.total.as_secs_f64()),
            target: Some((format!("all {} ports", thousands(self.ports)), complete)),
        })
    }

    fn memory_row(&self, when: Option<&str>) -> Row {
        let what = match when {
            Some(w) => format!("server memory {w}"),
            None => "server memory (VmRSS now, VmHWM peak)".into(),
        };
        let Some(pid) = self.pid else {
            return Row {
                what,
                figure: "not measured (no --server-pid)".into(),
                short: "-".into(),
                target: None,
            };
        };
        match memory(pid) {
            Ok(m) => Row {
                what,
                figure: format!(
                    "now {:.1} MB, peak {:.1} MB",
                    m.rss as f64 / MB,
                    m.peak as f64 / MB
                ),
                short: format!("{:.0}/{:.0} MB", m.rss as f64 / MB, m.peak as f64 / MB),
                // The peak before the full list is told, not judged: the line after it is.
                target: when.is_none().then(|| {
                    (
                        "≤ 100 MB (now and peak)".into(),
                        m.rss as f64 <= 100.0 * MB && m.peak as f64 <= 100.0 * MB,
                    )
                }),
            },
            Err(e) => Row {
                what,
                figure: format!("not read: {e:#}"),
                short: "-".into(),
                target: None,
            },
        }
    }
}

/// Whether a list answer holds exactly the port `id`.
fn only(body: &Value, id: &str) -> bool {
    body["ports"]
        .as_array()
        .is_some_and(|p| p.len() == 1 && p[0]["id"] == id)
}

async fn count_listed(endpoint: &Endpoint, path: &str) -> anyhow::Result<usize> {
    let mut conn = Connection::open(endpoint).await?;
    let r = conn
        .get(path)
        .await?
        .expect(StatusCode::OK, &format!("GET {path}"))?;
    Ok(r["ports"].as_array().map_or(0, Vec::len))
}

/// A bulk create's answer: how many ports it made and one of them (picked by `i` so that the
/// samples spread over the positions in a bulk), or what went wrong.
fn bulk_result(i: usize, asked: usize, r: &Response) -> BulkResult {
    if r.status != StatusCode::CREATED {
        return Err(failure_kind(r));
    }
    let answer: BulkAnswer = serde_json::from_slice(&r.body)
        .map_err(|e| format!("201 with an unreadable answer ({e})"))?;
    let n = answer.ports.len();
    if n != asked {
        return Err(format!("201 with {n} of {asked} ports"));
    }
    let sample = answer
        .ports
        .into_iter()
        .nth((i * 7919 + 13) % n.max(1))
        .map(AnswerPort::sample);
    Ok((n, sample))
}

fn tally(kinds: impl Iterator<Item = String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for k in kinds {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

/// `, 3 failed: 409 RetryRequest ×3`, or nothing.
fn failures_text(failures: &BTreeMap<String, usize>) -> String {
    if failures.is_empty() {
        return String::new();
    }
    let total: usize = failures.values().sum();
    let kinds: Vec<String> = failures.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
    format!(", {total} FAILED: {}", kinds.join(", "))
}

/// Counts the occurrences of a pattern in a stream of chunks (one may straddle two chunks).
struct Counter {
    pattern: &'static [u8],
    /// The last `pattern.len() - 1` bytes seen.
    tail: Vec<u8>,
    found: usize,
}

impl Counter {
    fn new(pattern: &'static [u8]) -> Counter {
        Counter {
            pattern,
            tail: Vec::new(),
            found: 0,
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        let k = self.pattern.len();
        let mut joint = std::mem::take(&mut self.tail);
        let old = joint.len();
        joint.extend_from_slice(&chunk[..chunk.len().min(k - 1)]);
        // Neither the tail nor that much of the chunk holds a whole match, so every match here
        // straddles the two, and none is counted twice.
        self.found += joint.windows(k).filter(|w| *w == self.pattern).count();
        self.found += chunk.windows(k).filter(|w| *w == self.pattern).count();
        joint.truncate(old);
        joint.extend_from_slice(&chunk[chunk.len().saturating_sub(k - 1)..]);
        self.tail = joint[joint.len().saturating_sub(k - 1)..].to_vec();
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at == 0 {
            writeln!(
                f,
                "empty database (creates on it; {} ports after them)",
                thousands(self.ports)
            )?;
        } else {
            writeln!(
                f,
                "checkpoint {}: {} ports in the database",
                thousands(self.at),
                thousands(self.ports)
            )?;
        }
        let w = self
            .rows
            .iter()
            .map(|r| r.what.chars().count())
            .max()
            .unwrap_or(0);
        for r in &self.rows {
            let verdict = match &r.target {
                Some((t, true)) => format!("  [target {t}: met]"),
                Some((t, false)) => format!("  [target {t}: NOT met]"),
                None => String::new(),
            };
            writeln!(f, "  {:<w$}  {}{verdict}", r.what, r.figure)?;
        }
        Ok(())
    }
}

impl fmt::Display for ScaleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "summary: {}", self.server)?;
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        // Rows by name, in the order they first appear; columns are the checkpoints.
        let mut names: Vec<&str> = Vec::new();
        for c in &self.checkpoints {
            for r in &c.rows {
                if !names.contains(&r.what.as_str()) {
                    names.push(&r.what);
                }
            }
        }
        let heads: Vec<String> = self
            .checkpoints
            .iter()
            .map(|c| {
                if c.at == 0 {
                    "empty".into()
                } else {
                    thousands(c.at)
                }
            })
            .collect();
        let cell = |c: &Checkpoint, name: &str| -> String {
            match c.rows.iter().find(|r| r.what == name) {
                Some(r) => match &r.target {
                    Some((_, false)) => format!("{} !", r.short),
                    _ => r.short.clone(),
                },
                None => String::new(),
            }
        };
        let w = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        let cw: Vec<usize> = self
            .checkpoints
            .iter()
            .zip(&heads)
            .map(|(c, h)| {
                names
                    .iter()
                    .map(|n| cell(c, n).chars().count())
                    .chain([h.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        write!(f, "  {:<w$}", "")?;
        for (h, cw) in heads.iter().zip(&cw) {
            write!(f, "  {h:>cw$}")?;
        }
        writeln!(f)?;
        for n in &names {
            write!(f, "  {n:<w$}")?;
            for (c, cw) in self.checkpoints.iter().zip(&cw) {
                write!(f, "  {:>cw$}", cell(c, n))?;
            }
            writeln!(f)?;
        }
        write!(
            f,
            "  (! marks a target not met; the tables above say which)"
        )
    }
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_a_pattern_across_chunks() {
        let text = br#"{"ports":[{"mac_address":"a"},{"mac_address":"b"},{"mac_address":"c"}]}"#;
        for size in [1, 2, 3, 7, 13, 14, 100] {
            let mut c = Counter::new(b"\"mac_address\"");
            for chunk in text.chunks(size) {
                c.feed(chunk);
            }
            assert_eq!(c.found, 3, "chunks of {size}");
        }
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn bulk_answers_are_counted_and_sampled() {
        let ok = Response {
            status: StatusCode::CREATED,
            body: serde_json::to_vec(&json!({"ports": [
                {"id": "a", "device_id": "d-a", "fixed_ips": [{"subnet_id": "s", "ip_address": "10.0.0.2"}], "name": "x"},
                {"id": "b", "device_id": "d-b", "fixed_ips": [{"subnet_id": "s", "ip_address": "10.0.0.3"}]},
            ]}))
            .unwrap()
            .into(),
        };
        let (n, sample) = bulk_result(0, 2, &ok).unwrap();
        assert_eq!(n, 2);
        let s = sample.unwrap();
        assert_eq!((s.id.as_str(), s.ip.as_deref()), ("b", Some("10.0.0.3")));
        assert_eq!(bulk_result(0, 3, &ok).unwrap_err(), "201 with 2 of 3 ports");
        let retry = Response {
            status: StatusCode::CONFLICT,
            body: serde_json::to_vec(
                &json!({"NeutronError": {"type": "RetryRequest", "message": "m", "detail": ""}}),
            )
            .unwrap()
            .into(),
        };
        assert_eq!(bulk_result(0, 2, &retry).unwrap_err(), "409 RetryRequest");
    }
}

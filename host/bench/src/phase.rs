//! What the benches share: requests run over N keep-alive connections, their latencies and
//! percentiles, and the notes on the machine's state.

use std::cell::Cell;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use futures_util::future::try_join_all;
use serde_json::Value;

use super::client::{Connection, Endpoint, Response};

/// A request, and the status it must get.
#[derive(Clone)]
pub struct Job {
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
    pub expect: StatusCode,
}

impl Job {
    pub fn get(path: String) -> Job {
        Job {
            method: Method::GET,
            path,
            body: None,
            expect: StatusCode::OK,
        }
    }
}

/// One answer: how long it took, whether it had the expected status, and what the caller's
/// digest made of it.
pub struct Outcome<T> {
    pub latency: Duration,
    pub ok: bool,
    pub status: StatusCode,
    pub value: T,
}

/// Every answer of a run of requests, in job order.
pub struct Run<T> {
    pub wall: Duration,
    pub outcomes: Vec<Outcome<T>>,
}

impl<T> Run<T> {
    /// Latencies, sorted.
    pub fn latencies(&self) -> Vec<Duration> {
        let mut l: Vec<Duration> = self.outcomes.iter().map(|o| o.latency).collect();
        l.sort();
        l
    }

    pub fn failures(&self) -> usize {
        self.outcomes.iter().filter(|o| !o.ok).count()
    }

    pub fn per_second(&self) -> f64 {
        self.outcomes.len() as f64 / self.wall.as_secs_f64()
    }
}

/// Runs jobs `0..n` (built by `job` as they are sent; it may end the run early by giving
/// `None`) over `concurrency` connections, each sending its requests one after another, so
/// `concurrency` requests are in flight. `digest`
/// turns each answer into what the caller keeps (it runs on the client's clock, between a
/// worker's requests: keep it cheap). Answers with another status than expected are counted,
/// not fatal; a failed connection is.
pub async fn run_requests<T>(
    endpoint: &Endpoint,
    concurrency: usize,
    n: usize,
    job: impl Fn(usize) -> Option<Job>,
    digest: impl Fn(usize, &Job, Response) -> T,
) -> anyhow::Result<Run<T>> {
    let mut connections = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.clamp(1, n.max(1)) {
        connections.push(Connection::open(endpoint).await?);
    }
    // The workers share this task (the client runtime has one thread anyway), so a plain
    // counter hands out the jobs.
    let next = Cell::new(0usize);
    let (job, digest, next) = (&job, &digest, &next);
    let start = Instant::now();
    let workers = connections.into_iter().map(|mut conn| async move {
        let mut done = Vec::new();
        loop {
            let i = next.get();
            if i >= n {
                break;
            }
            next.set(i + 1);
            let Some(j) = job(i) else {
                next.set(n);
                break;
            };
            let t = Instant::now();
            let r = conn
                .request(j.method.clone(), &j.path, j.body.as_ref())
                .await?;
            let latency = t.elapsed();
            let status = r.status;
            let value = digest(i, &j, r);
            done.push((
                i,
                Outcome {
                    latency,
                    ok: status == j.expect,
                    status,
                    value,
                },
            ));
        }
        anyhow::Ok(done)
    });
    let mut results: Vec<(usize, Outcome<T>)> =
        try_join_all(workers).await?.into_iter().flatten().collect();
    let wall = start.elapsed();
    results.sort_by_key(|(i, _)| *i);
    Ok(Run {
        wall,
        outcomes: results.into_iter().map(|(_, o)| o).collect(),
    })
}

/// `409 RetryRequest`-style summary of a failed answer: status and NeutronError type.
pub fn failure_kind(r: &Response) -> String {
    let kind = r
        .json()
        .ok()
        .and_then(|b| b["NeutronError"]["type"].as_str().map(str::to_string));
    match kind {
        Some(k) => format!("{} {k}", r.status.as_u16()),
        None => format!("{}", r.status.as_u16()),
    }
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// The 1-minute load average (Linux), if it can be read.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Notes that go before any figures: a debug build, or a busy machine.
pub fn machine_notes(load: Option<f64>) -> Vec<String> {
    let mut notes = Vec::new();
    // The server and this client share the machine with whatever else runs on it: say so when
    // something else was busy, since it moves every figure.
    if let Some(load) = load.filter(|l| *l >= 0.5) {
        notes.push(format!(
            "the 1-minute load average was {load:.2} before the run: other work on this \
             machine skews these figures"
        ));
    }
    if cfg!(debug_assertions) {
        notes.push("DEBUG BUILD: these figures say little; run with --release".into());
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&s, 50), Duration::from_millis(50));
        assert_eq!(percentile(&s, 99), Duration::from_millis(99));
        assert_eq!(percentile(&s[..1], 99), Duration::from_millis(1));
        let s: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(percentile(&s, 99), Duration::from_millis(10));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }
}

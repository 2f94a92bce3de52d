//! Observability (issue 11): Prometheus metrics on `/metrics` (drivers' calls and failures by
//! kind, routes by template, binding outcomes), Neutron's `X-OpenStack-Request-ID` on every
//! answer, and the request's id on the log lines of the drivers it calls.
//!
//! The metrics recorder is the process's (every server of this test binary shares it), so the
//! tests compare counters before and after what they do.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use neutrino::api::ApiConfig;
use neutrino::plugins::Limits;
use neutrino::plugins::registry::DriversConfig;
use neutrino_tests::api::{Db, TestApi};
use neutrino_tests::component;
use serde_json::{Value, json};

const CALLS: &str = "neutrino_driver_calls_total";
const FAILURES: &str = "neutrino_driver_call_failures_total";
const BINDINGS: &str = "neutrino_port_bindings_total";
const HTTP_REQUESTS: &str = "neutrino_http_requests_total";

/// Drivers `names` in order, test components found in the build's output directory.
fn drivers(names: &[&str]) -> impl Fn(&mut ApiConfig) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    move |c: &mut ApiConfig| {
        c.drivers = DriversConfig {
            mechanism_drivers: names.clone(),
            plugin_dir: component("misbehaving-good").parent().map(Into::into),
            limits: Limits::default(),
            ..DriversConfig::default()
        };
    }
}

/// The sum of the samples of `name` whose labels include every one of `labels` (0 if none).
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            (n == name).then_some((rest, value))
        })
        .filter(|(rest, _)| {
            labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v.parse::<f64>().unwrap())
        .sum()
}

async fn metrics(api: &TestApi) -> String {
    let (status, headers, text) = api.get_text("/metrics").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{headers:?}"
    );
    text
}

use crate::binding::ovs_node;

async fn create(api: &TestApi, resource: &str, body: Value) -> (Value, String) {
    let r = api
        .call(
            Method::POST,
            &format!("/v2.0/{resource}s"),
            Some(json!({ resource: body })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{resource}: {}", r.body);
    let id = r.headers["x-openstack-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    (r.body[resource].clone(), id)
}

async fn network_with_subnet(api: &TestApi, cidr: &str) -> String {
    let (n, _) = create(api, "network", json!({"name": "n"})).await;
    let id = n["id"].as_str().unwrap().to_string();
    create(
        api,
        "subnet",
        json!({"network_id": id, "cidr": cidr, "ip_version": 4}),
    )
    .await;
    id
}

#[tokio::test]
async fn driver_calls_failures_by_kind_and_bindings_are_counted() {
    let api = TestApi::with(Db::Sqlite, drivers(&["misbehaving-panic", "ovs-hybrid"])).await;
    ovs_node(&api, "node-metrics").await;
    let network = network_with_subnet(&api, "10.91.0.0/24").await;
    let before = metrics(&api).await;
    let (port, _) = create(
        &api,
        "port",
        json!({"network_id": network, "binding:host_id": "node-metrics"}),
    )
    .await;
    assert_eq!(port["binding:vif_type"], "ovs", "{port}");
    let after = metrics(&api).await;

    let calls = |t: &str| {
        metric(
            t,
            CALLS,
            &[("driver", "ovs-hybrid"), ("function", "bind_port")],
        )
    };
    assert!(calls(&after) >= calls(&before) + 1.0, "{after}");
    // The panicking driver was asked first: its trap is counted as such.
    let traps = |t: &str| {
        metric(
            t,
            FAILURES,
            &[
                ("driver", "misbehaving-panic"),
                ("function", "bind_port"),
                ("kind", "trap"),
            ],
        )
    };
    assert!(traps(&after) >= traps(&before) + 1.0, "{after}");
    let bound = |t: &str| {
        metric(
            t,
            BINDINGS,
            &[("outcome", "bound"), ("driver", "ovs-hybrid")],
        )
    };
    assert!(bound(&after) >= bound(&before) + 1.0, "{after}");
    // Fuel and time per call are histograms.
    for histogram in [
        "neutrino_driver_call_fuel_bucket",
        "neutrino_driver_call_duration_seconds_bucket",
    ] {
        let samples = metric(
            &after,
            histogram,
            &[
                ("driver", "ovs-hybrid"),
                ("function", "bind_port"),
                ("le", "+Inf"),
            ],
        );
        assert!(samples >= 1.0, "{histogram}: {after}");
    }
    // No tenant data in any label.
    for id in [&network, port["id"].as_str().unwrap()] {
        assert!(!after.contains(id), "{id} in the metrics");
    }
}

#[tokio::test]
async fn routes_are_counted_by_template_never_by_path() {
    let api = TestApi::new(Db::Sqlite).await;
    let (network, _) = create(&api, "network", json!({"name": "n"})).await;
    let id = network["id"].as_str().unwrap();
    let shown = api
        .call(Method::GET, &format!("/v2.0/networks/{id}"), None)
        .await;
    assert_eq!(shown.status, StatusCode::OK);
    let missing = api
        .call(Method::GET, "/v2.0/no-such-thing/abc-secret", None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let text = metrics(&api).await;
    let show = &[
        ("method", "GET"),
        ("route", "/v2.0/networks/{id}"),
        ("status", "200"),
    ];
    assert!(metric(&text, HTTP_REQUESTS, show) >= 1.0, "{text}");
    let create = &[
        ("method", "POST"),
        ("route", "/v2.0/networks"),
        ("status", "201"),
    ];
    assert!(metric(&text, HTTP_REQUESTS, create) >= 1.0, "{text}");
    let unmatched = &[("route", "unmatched"), ("status", "404")];
    assert!(metric(&text, HTTP_REQUESTS, unmatched) >= 1.0, "{text}");
    let latency = &[
        ("method", "GET"),
        ("route", "/v2.0/networks/{id}"),
        ("le", "+Inf"),
    ];
    assert!(
        metric(
            &text,
            "neutrino_http_request_duration_seconds_bucket",
            latency
        ) >= 1.0,
        "{text}"
    );
    assert!(!text.contains(id) && !text.contains("abc-secret"), "{text}");
}

/// `req-` and a UUID, as Neutron's (oslo.middleware's) request ids.
fn is_neutron_request_id(v: &str) -> bool {
    let Some(uuid) = v.strip_prefix("req-") else {
        return false;
    };
    let groups: Vec<&str> = uuid.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| {
            g.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        })
}

#[tokio::test]
async fn every_answer_has_a_request_id_in_neutron_s_format() {
    let api = TestApi::new(Db::Sqlite).await;
    let (network, _) = create(&api, "network", json!({"name": "n"})).await;
    let id = network["id"].as_str().unwrap();
    let requests: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/".into(), None),
        (Method::GET, "/v2.0/networks".into(), None),
        (Method::GET, format!("/v2.0/networks/{id}"), None),
        (
            Method::POST,
            "/v2.0/networks".into(),
            Some(json!({"network": {"name": 5}})),
        ),
        (Method::DELETE, "/v2.0/networks".into(), None),
        (Method::PATCH, format!("/v2.0/networks/{id}"), None),
        (Method::GET, "/v2.0/nothing-here".into(), None),
        (Method::GET, "/healthz".into(), None),
        (Method::GET, "/internal/hosts/h/changes".into(), None),
        (Method::DELETE, format!("/v2.0/networks/{id}"), None),
    ];
    let mut seen = std::collections::HashSet::new();
    for (method, path, body) in requests {
        let r = api.call(method.clone(), &path, body).await;
        let value = r
            .headers
            .get("x-openstack-request-id")
            .unwrap_or_else(|| panic!("{method} {path} ({}): no request id", r.status))
            .to_str()
            .unwrap()
            .to_string();
        assert!(is_neutron_request_id(&value), "{method} {path}: {value}");
        assert!(
            seen.insert(value),
            "{method} {path}: a request id used twice"
        );
    }
    let (_, headers, _) = api.get_text("/metrics").await;
    assert!(is_neutron_request_id(
        headers["x-openstack-request-id"].to_str().unwrap()
    ));
    // Never the client's: Neutron makes its own for every request.
    let theirs = "req-00000000-0000-4000-8000-000000000000";
    let r = api
        .request(
            Method::GET,
            "/v2.0/networks",
            &[("x-openstack-request-id", theirs)],
            Vec::new(),
        )
        .await;
    let ours = r.headers["x-openstack-request-id"].to_str().unwrap();
    assert!(is_neutron_request_id(ours) && ours != theirs, "{ours}");
}

/// A writer that keeps what the log subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_driver_s_log_line_carries_the_request_s_id() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_env_filter("warn,neutrino::driver=debug,neutrino_core=info")
        .finish();
    // This thread's (the test's runtime is single-threaded); binding carries it to the
    // drivers' blocking thread.
    let _default = tracing::subscriber::set_default(subscriber);
    let api = TestApi::new(Db::Sqlite).await;
    ovs_node(&api, "node-logs").await;
    let network = network_with_subnet(&api, "10.92.0.0/24").await;
    let (port, request_id) = create(
        &api,
        "port",
        json!({"network_id": network, "binding:host_id": "node-logs"}),
    )
    .await;
    assert_eq!(port["binding:vif_type"], "ovs", "{port}");
    let port_id = port["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // ovs-hybrid logs (debug) the segment it bound the port to.
    let driver_line = logs
        .lines()
        .find(|l| l.contains("neutrino::driver") && l.contains(&format!("bound port {port_id}")))
        .unwrap_or_else(|| panic!("no driver line for {port_id} in:\n{logs}"));
    assert!(
        driver_line.contains(&format!("id={request_id}")),
        "{request_id} not in: {driver_line}"
    );
    // The binding written names the port and its revision in the same span: what the agent
    // logs when it plugs that revision.
    let written = logs
        .lines()
        .find(|l| l.contains("port binding written") && l.contains(port_id))
        .unwrap_or_else(|| panic!("no binding line for {port_id} in:\n{logs}"));
    assert!(written.contains(&format!("id={request_id}")), "{written}");
    assert!(
        written.contains(&format!("revision={}", port["revision_number"])),
        "{written}"
    );
}

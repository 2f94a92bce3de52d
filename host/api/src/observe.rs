//! What the API tells operators: a request id on every answer (Neutron's
//! `X-OpenStack-Request-ID: req-<uuid>`), a tracing span per request carrying it, and the
//! Prometheus metrics of `GET /metrics` (the API's routes, the drivers' calls, the bindings).
//!
//! `/metrics` is outside `/v2.0` and, as `/healthz`, needs no token: Prometheus scrapes it, and
//! Neutron has no such endpoint whose policy we could follow. What it shows is safe for anyone
//! who can reach the port: its labels are bounded sets (route templates such as
//! `/v2.0/ports/{id}`, never the raw path; methods; statuses; driver names from the operator's
//! configuration; functions and failure kinds), never an id, a name or a project. Operators who
//! do not want it reachable keep it behind their proxy, as they do `/healthz`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnFailure, MakeSpan, TraceLayer};

/// The header of Neutron's request id (oslo.middleware's `request_id`).
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-openstack-request-id");

/// Counter: answered requests, labels `method`, `route` (the template), `status`.
pub const HTTP_REQUESTS: &str = "neutrino_http_requests_total";
/// Histogram: time to the answer's head in seconds, labels `method`, `route`.
pub const HTTP_SECONDS: &str = "neutrino_http_request_duration_seconds";
/// The route label of a request no route matched (Neutron's 404 for an unknown path).
pub const UNMATCHED: &str = "unmatched";

/// The id of one request, `req-<uuid>`, in the request's extensions and its answer's header.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Middleware, outermost: a new id for every request (as Neutron, never one the client
/// sent), in the request for the span and in the answer's `X-OpenStack-Request-ID`.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = format!("req-{}", neutrino_store::new_id());
    let value = HeaderValue::from_str(&id).expect("a UUID is a header value");
    req.extensions_mut().insert(RequestId(id));
    let mut response = next.run(req).await;
    response.headers_mut().insert(REQUEST_ID_HEADER, value);
    response
}

/// The span of one request: its id, method and route template. Made at WARN level, so the
/// default log filter keeps it and every warning or driver log line inside names the request.
#[derive(Debug, Clone, Copy)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, req: &axum::http::Request<B>) -> tracing::Span {
        let id = req
            .extensions()
            .get::<RequestId>()
            .map_or("", |r| r.0.as_str());
        tracing::warn_span!(
            "request",
            id = %id,
            method = %req.method(),
            route = %route(req),
        )
    }
}

/// tower-http's trace layer with [`RequestSpan`]; server errors logged as warnings.
pub fn trace_layer() -> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, RequestSpan> {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN))
}

/// The route template the router matched, or [`UNMATCHED`].
fn route<B>(req: &axum::http::Request<B>) -> &str {
    req.extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
}

/// The method as a label: the methods the API serves, everything else `other`.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware (inside the router, where the matched route is known): counts the request by
/// method, route template and status, and records its latency.
pub async fn track(req: Request, next: Next) -> Response {
    let route = route(&req).to_string();
    let method = method_label(req.method());
    let started = Instant::now();
    let response = next.run(req).await;
    let elapsed = started.elapsed();
    metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route.clone(),
        "status" => response.status().as_u16().to_string())
    .increment(1);
    metrics::histogram!(HTTP_SECONDS, "method" => method, "route" => route)
        .record(elapsed.as_secs_f64());
    response
}

/// Buckets of the latency histograms (seconds): 100 µs to 10 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Buckets of the drivers' fuel per call.
const FUEL_BUCKETS: &[f64] = &[1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];
/// How often histograms are drained (the exporter's upkeep).
const UPKEEP: Duration = Duration::from_secs(5);

/// The process's Prometheus recorder, installed on first use as the `metrics` facade's global
/// recorder (the drivers' runtime and the services record through the facade). Every server
/// of the process shares it. If another recorder was installed first, `/metrics` shows an
/// empty page and says so in the log.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(neutrino_runtime::plugins::metrics::FUEL.into()),
                    FUEL_BUCKETS,
                )
            })
            .expect("the buckets are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed: /metrics stays empty");
        }
        describe();
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("neutrino-metrics".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP);
                    upkeep.run_upkeep();
                }
            })
            .expect("spawn the metrics upkeep thread");
        handle
    })
}

fn describe() {
    neutrino_runtime::plugins::metrics::describe();
    metrics::describe_counter!(
        HTTP_REQUESTS,
        "Requests answered, by method, route template and status."
    );
    metrics::describe_histogram!(
        HTTP_SECONDS,
        metrics::Unit::Seconds,
        "Time to the head of the answer, by method and route template."
    );
    metrics::describe_counter!(
        neutrino_core::port_binding::BINDINGS,
        "Port bindings written, by outcome (bound, binding_failed, unbound) and bottom driver."
    );
}

/// `GET /metrics`: Prometheus' text exposition format.
pub async fn render() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        prometheus().render(),
    )
        .into_response()
}

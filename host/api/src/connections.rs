//! Serving HTTP connections with limits, so that clients that open connections and say little
//! (or nothing) cannot take the server from everyone else:
//!
//! - a request's headers must arrive within [`HEADER_READ_TIMEOUT`] of the connection being
//!   ready for them (also while a kept-alive connection waits for its next request), or the
//!   connection is closed;
//! - a request body that stops for [`BODY_READ_TIMEOUT`] between two pieces is cut off;
//! - headers are at most [`MAX_HEADER_BYTES`] (431 beyond);
//! - at most `max_connections` are open at once: past it, new connections wait in the
//!   kernel's backlog until one closes, rather than taking the last file descriptors (at
//!   about 20,000 idle connections `accept` failed with "Too many open files" and every
//!   request after it timed out).
//!
//! HTTP/1.1 only, as Neutron's clients speak it. On a stop, no new connection is accepted and
//! those open finish their current request (the caller bounds how long).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// How long a connection may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request body may pause between two pieces.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head (request line and headers) read.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// How many connections may be open at once: well below the process's file descriptor limit,
/// which the database, dnsmasq's pipes and the agent also need.
pub fn default_max_connections() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(65_536) as usize;
    (soft.saturating_sub(256) * 3 / 4).clamp(64, 16_384)
}

/// Serves `app` on `listener` until `stop` resolves; then stops accepting and waits for the
/// open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    max_connections: usize,
    stop: impl Future<Output = ()> + Send,
) {
    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        BODY_READ_TIMEOUT,
    ));
    let slots = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    tokio::pin!(stop);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut stop => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and the like: wait a little rather than spin.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(
            app.clone()
                .map_request(|r: hyper::Request<Incoming>| r.map(axum::body::Body::new)),
        );
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            // Closed by the client, timed out or cut: nothing to tell anyone.
            let _ = watched.await;
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

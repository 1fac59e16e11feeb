//! Serving a router on a TCP listener with the connection limits every listener needs (the
//! admin/local one and the tunnel one), which `axum::serve` cannot be configured with:
//!
//! * a header-read timeout: a connection that has not sent a whole request head within it is
//!   closed (slow or half-sent requests). hyper runs this timer whenever it waits for a request
//!   head, so it is also the idle keep-alive timeout: a connection idle between requests is
//!   closed after it too. It never runs while a response is being sent, so long-lived responses
//!   (MCP GET streams, `/api/activity/stream`) are not cut by it;
//! * a cap on open connections: at the cap the listener stops accepting, and new connections
//!   wait in the kernel's listen backlog (first come, first served) until an open one ends, so
//!   the process never holds more than the cap in file descriptors however many connect.
//!
//! Shutdown is graceful as with `axum::serve`: on the signal the listener stops accepting, open
//! connections finish their request in flight, then `serve` returns.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// The limits of one listener (`--header-read-timeout`, `--max-connections`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` completes, then waits for open connections to
/// finish. Handlers see the peer address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop, stopping) = watch::channel(());
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        // Waiting for a free slot before accepting is what leaves the rest in the backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        no_delay(&stream);
        let router = router.clone();
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let _slot = slot;
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    router.clone().oneshot(request.map(Body::new))
                });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true);
            let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
            tokio::select! {
                result = connection.as_mut() => log_end(peer, result),
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    log_end(peer, connection.await);
                }
            }
        });
        // Reap finished connections so the set does not grow with every connection ever served.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    // Dropping the sender wakes every `stopping.changed()`.
    drop(stop);
    while connections.join_next().await.is_some() {}
}

fn log_end(peer: SocketAddr, result: Result<(), hyper::Error>) {
    match result {
        Ok(()) => {}
        Err(err) if err.is_timeout() => {
            tracing::debug!(%peer, "connection closed: no complete request head in time");
        }
        Err(err) => tracing::debug!(%peer, error = %err, "connection ended with an error"),
    }
}

/// Errors about one connection (reset before accept) are skipped; others (out of file
/// descriptors) are logged and retried after a pause instead of spinning.
async fn accept_failed(err: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accepting a connection failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// No Nagle: MCP answers are small SSE writes in quick succession, and Nagle plus the client's
/// delayed ACK would add ~40 ms to each.
fn no_delay(tcp: &TcpStream) {
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::debug!(error = %err, "could not set TCP_NODELAY");
    }
}

//! A `tools/call`'s progress and cancellation: the tool's `progress()` reports become
//! `notifications/progress` for a client that sent a `progressToken`, and the client's
//! `notifications/cancelled` ends the run (which kills the worker and logs it `cancelled`).

use std::time::{Duration, Instant};

use contract::sandbox::{PROGRESS_INTERVAL_MS, Progress};
use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::{Peer, RoleServer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Reports held between the sandbox and a slow client before newer ones are dropped.
const BUFFER: usize = 16;
/// How long the answer waits for the last notifications to be sent.
const FLUSH_WAIT: Duration = Duration::from_secs(1);

/// Forwards reports to the client until the sender is dropped (the run ended).
pub(super) struct Forwarder {
    pub(super) sender: mpsc::Sender<Progress>,
    task: JoinHandle<()>,
}

impl Forwarder {
    pub(super) fn start(peer: Peer<RoleServer>, token: ProgressToken) -> Forwarder {
        let (sender, reports) = mpsc::channel(BUFFER);
        let task = tokio::spawn(forward(peer, token, reports));
        Forwarder { sender, task }
    }

    /// Waits (briefly) for the notifications still queued, so they precede the answer.
    pub(super) async fn finish(self) {
        let Forwarder { sender, task } = self;
        drop(sender);
        let _ = tokio::time::timeout(FLUSH_WAIT, task).await;
    }
}

async fn forward(
    peer: Peer<RoleServer>,
    token: ProgressToken,
    mut reports: mpsc::Receiver<Progress>,
) {
    let interval = Duration::from_millis(PROGRESS_INTERVAL_MS);
    let mut last: Option<(Instant, f64)> = None;
    while let Some(report) = reports.recv().await {
        let finished = report.total == Some(report.done);
        // MCP: progress must increase; and no client needs more than one a tick.
        let keep = match last {
            None => true,
            Some((at, done)) => report.done > done && (finished || at.elapsed() >= interval),
        };
        if !keep {
            continue;
        }
        last = Some((Instant::now(), report.done));
        let mut param = ProgressNotificationParam::new(token.clone(), report.done);
        if let Some(total) = report.total {
            param = param.with_total(total);
        }
        if let Some(message) = report.message {
            param = param.with_message(message);
        }
        if peer.notify_progress(param).await.is_err() {
            return; // the client is gone; the run's cancellation is its own matter
        }
    }
}

//! Alerts: webhooks (Slack, Discord, generic JSON) told when something an admin must act on
//! happens.
//!
//! The code paths where the events happen call `Alerts::raise` (through `AppState::alerts`):
//! - `BreakerOpened`: `dispatch::Sandbox`, when its circuit breaker goes from closed to open;
//! - `SandboxUnavailable`, `ZygoteCrashLoop`: `monitor`, from the sandbox's health answers
//!   (failing `SANDBOX_DOWN_CHECKS` checks in a row; `CRASH_LOOP_RESTARTS` zygote restarts
//!   within `CRASH_LOOP_WINDOW`);
//! - `ExternalSourceDown`: `external::record_contact`, when a source goes from answering to
//!   failing (a health check, a discovery or a passthrough call);
//! - `ApprovalsWaiting`: `monitor`, each minute: tool versions, module or network requests or
//!   sources waiting longer than the setting `approval_wait_minutes`;
//! - `SignInFailures`: `auth::sign_in` (`Alerts::sign_in_failed`): `sign_in_failures` failed
//!   or throttled sign-ins within `sign_in_window_minutes`, from anywhere;
//! - `PackageVulnerable`: `packages::recheck` (daily and on demand), for an installed package
//!   version OSV lists a vulnerability for that it did not list before.
//!
//! `raise` never waits: it deduplicates (the same kind and subject within
//! `dedup_window_minutes` raise once), then `try_send`s into a bounded queue; a full queue drops
//! the alert and counts it. `deliver` (one background task) takes alerts off the queue and sends
//! each to every enabled webhook, at most `per_webhook_per_minute` per webhook, each with a 5 s
//! timeout and bounded retries with backoff, several webhooks at once, and records the outcome on
//! the webhook's row (what the settings page and `GET /api/alerts/webhooks` show).
//!
//! State here (dedup, counters, rate limits) is in memory and per replica: with several replicas
//! an event seen by two of them may be sent twice.

mod api;
mod deliver;
mod monitor;
pub mod settings;
pub mod webhooks;

pub(crate) use api::openapi;
pub use api::router;
pub use deliver::TRIES as DELIVERY_TRIES;
pub use monitor::{CRASH_LOOP_RESTARTS, Monitor, SANDBOX_DOWN_CHECKS, check_approvals};
pub use settings::AlertSettings;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::app::AppState;

/// Alerts waiting for the delivery task; beyond this `raise` drops and counts.
pub const QUEUE_CAPACITY: usize = 256;
/// Distinct (kind, subject) pairs remembered for deduplication; beyond this (after forgetting
/// those older than the window) a new pair is dropped and counted, so a flood of subjects
/// cannot grow memory.
pub const DEDUP_CAPACITY: usize = 1024;
/// The `outcome` labels of `Counts::deliveries`, in the order of `Shared::deliveries`.
const DELIVERY_OUTCOMES: [&str; 3] = ["delivered", "failed", "rate_limited"];
/// Alerts kept for the settings page ("recently raised").
const RECENT_MAX: usize = 20;

/// What happened. The names are the `kind` of the generic payload and of the REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[schema(as = alerts::Kind)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    BreakerOpened,
    ZygoteCrashLoop,
    SandboxUnavailable,
    ExternalSourceDown,
    ApprovalsWaiting,
    SignInFailures,
    PackageVulnerable,
    /// A test delivery an admin asked for.
    Test,
}

impl Kind {
    /// Every kind, in declaration order (`kind as usize` indexes it).
    pub const ALL: [Kind; 8] = [
        Kind::BreakerOpened,
        Kind::ZygoteCrashLoop,
        Kind::SandboxUnavailable,
        Kind::ExternalSourceDown,
        Kind::ApprovalsWaiting,
        Kind::SignInFailures,
        Kind::PackageVulnerable,
        Kind::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::BreakerOpened => "breaker_opened",
            Kind::ZygoteCrashLoop => "zygote_crash_loop",
            Kind::SandboxUnavailable => "sandbox_unavailable",
            Kind::ExternalSourceDown => "external_source_down",
            Kind::ApprovalsWaiting => "approvals_waiting",
            Kind::SignInFailures => "sign_in_failures",
            Kind::PackageVulnerable => "package_vulnerable",
            Kind::Test => "test",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Kind::BreakerOpened => "Sandbox circuit breaker opened",
            Kind::ZygoteCrashLoop => "Sandbox zygote keeps crashing",
            Kind::SandboxUnavailable => "Sandbox unavailable",
            Kind::ExternalSourceDown => "External MCP source down",
            Kind::ApprovalsWaiting => "Approvals waiting",
            Kind::SignInFailures => "Failed sign-ins spiking",
            Kind::PackageVulnerable => "Package with a known vulnerability",
            Kind::Test => "Test alert",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Kind::BreakerOpened
            | Kind::ZygoteCrashLoop
            | Kind::SandboxUnavailable
            | Kind::PackageVulnerable => Severity::Critical,
            Kind::ExternalSourceDown | Kind::SignInFailures => Severity::Warning,
            Kind::ApprovalsWaiting | Kind::Test => Severity::Info,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One alert as raised: what, about what (`subject`: "sandbox", a source id, …), a sentence
/// for people, and details for machines.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub kind: Kind,
    pub subject: String,
    pub message: String,
    pub details: Value,
    /// When it was raised (RFC 3339).
    pub timestamp: String,
}

/// What `raise` did with an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raised {
    Queued,
    /// The same kind and subject was raised within the dedup window.
    Duplicate,
    /// The queue (or the dedup table) was full: dropped and counted.
    Dropped,
}

/// Counters since start, for the settings page and the REST API.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
#[schema(as = alerts::Stats)]
pub struct Stats {
    pub raised: u64,
    pub deduplicated: u64,
    pub dropped: u64,
    pub queued: usize,
    pub queue_capacity: usize,
}

/// Counters since start by what `/metrics` labels them with (`metrics::Metrics::refresh` mirrors
/// them at scrape time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Alerts queued for delivery, by kind (every kind, zeros included).
    pub raised: Vec<(Kind, u64)>,
    /// Alerts dropped because the queue or the dedup table was full.
    pub dropped: u64,
    /// Deliveries to one webhook, after their retries, by outcome (`delivered`, `failed`,
    /// `rate_limited`), as the webhook's `last_status` says them.
    pub deliveries: Vec<(&'static str, u64)>,
}

/// The handle in `AppState` (cloning copies one `Arc`).
#[derive(Clone)]
pub struct Alerts(Arc<Shared>);

struct Shared {
    sender: mpsc::Sender<Alert>,
    /// Taken by `start` (the delivery task owns it).
    receiver: Mutex<Option<mpsc::Receiver<Alert>>>,
    /// When each (kind, subject) was last queued. A std mutex: held for a map operation and a
    /// `try_send`, never across an await.
    last_raised: Mutex<HashMap<(Kind, String), Instant>>,
    /// The thresholds in force (from the settings table; refreshed by `monitor` each minute and
    /// at once when an admin changes them on this replica).
    settings: Mutex<AlertSettings>,
    /// Failed sign-ins in the current window: (window start, count).
    sign_ins: Mutex<(Instant, u32)>,
    recent: Mutex<Vec<Alert>>,
    raised: AtomicU64,
    deduplicated: AtomicU64,
    dropped: AtomicU64,
    /// `raised`, by `Kind as usize`.
    raised_by_kind: [AtomicU64; Kind::ALL.len()],
    /// Final outcomes of deliveries: delivered, failed, rate limited.
    deliveries: [AtomicU64; 3],
    /// One HTTP client for every delivery (its own connection pool).
    http: OnceLock<Result<reqwest::Client, String>>,
}

impl Default for Alerts {
    fn default() -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        Alerts(Arc::new(Shared {
            sender,
            receiver: Mutex::new(Some(receiver)),
            last_raised: Mutex::new(HashMap::new()),
            settings: Mutex::new(AlertSettings::default()),
            sign_ins: Mutex::new((Instant::now(), 0)),
            recent: Mutex::new(Vec::new()),
            raised: AtomicU64::new(0),
            deduplicated: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            raised_by_kind: std::array::from_fn(|_| AtomicU64::new(0)),
            deliveries: std::array::from_fn(|_| AtomicU64::new(0)),
            http: OnceLock::new(),
        }))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section here leaves its data consistent; a panic elsewhere must not stop
    // alerts.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Alerts {
    /// Raises an alert without ever waiting: deduplicated, then queued for delivery (or dropped
    /// and counted when the queue is full). Safe to call from any code path, sync or async.
    pub fn raise(
        &self,
        kind: Kind,
        subject: impl Into<String>,
        message: impl Into<String>,
        details: Value,
    ) -> Raised {
        self.raise_at(
            kind,
            subject.into(),
            message.into(),
            details,
            Instant::now(),
        )
    }

    fn raise_at(
        &self,
        kind: Kind,
        subject: String,
        message: String,
        details: Value,
        now: Instant,
    ) -> Raised {
        let window = self.settings().dedup_window();
        let mut last = lock(&self.0.last_raised);
        let key = (kind, subject);
        if let Some(at) = last.get(&key)
            && now.duration_since(*at) < window
        {
            self.0.deduplicated.fetch_add(1, Ordering::Relaxed);
            return Raised::Duplicate;
        }
        if last.len() >= DEDUP_CAPACITY && !last.contains_key(&key) {
            last.retain(|_, at| now.duration_since(*at) < window);
            if last.len() >= DEDUP_CAPACITY {
                self.0.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    kind = kind.as_str(),
                    "alert dropped: too many distinct subjects"
                );
                return Raised::Dropped;
            }
        }
        let alert = Alert {
            kind,
            subject: key.1.clone(),
            message,
            details,
            timestamp: crate::db::now(),
        };
        match self.0.sender.try_send(alert.clone()) {
            Ok(()) => {
                last.insert(key, now);
                drop(last);
                self.0.raised.fetch_add(1, Ordering::Relaxed);
                self.0.raised_by_kind[kind as usize].fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    kind = kind.as_str(),
                    subject = alert.subject,
                    "alert: {}",
                    alert.message
                );
                let mut recent = lock(&self.0.recent);
                if recent.len() >= RECENT_MAX {
                    recent.remove(0);
                }
                recent.push(alert);
                Raised::Queued
            }
            Err(_) => {
                // Full (or the delivery task is gone): never wait on the caller's path.
                self.0.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    kind = kind.as_str(),
                    "alert dropped: the delivery queue is full"
                );
                Raised::Dropped
            }
        }
    }

    /// A failed (wrong password) or throttled sign-in, from anywhere. The `sign_in_failures`th
    /// of a window raises `SignInFailures`.
    pub fn sign_in_failed(&self) {
        self.sign_in_failed_at(Instant::now());
    }

    fn sign_in_failed_at(&self, now: Instant) {
        let settings = self.settings();
        let window = Duration::from_secs(settings.sign_in_window_minutes as u64 * 60);
        let count = {
            let mut state = lock(&self.0.sign_ins);
            if now.duration_since(state.0) >= window {
                *state = (now, 0);
            }
            state.1 = state.1.saturating_add(1);
            state.1
        };
        if i64::from(count) == settings.sign_in_failures {
            self.raise_at(
                Kind::SignInFailures,
                "sign-in".into(),
                format!(
                    "{count} failed sign-ins within {} minutes",
                    settings.sign_in_window_minutes
                ),
                serde_json::json!({
                    "failures": count,
                    "window_minutes": settings.sign_in_window_minutes,
                }),
                now,
            );
        }
    }

    pub fn settings(&self) -> AlertSettings {
        lock(&self.0.settings).clone()
    }

    pub fn apply_settings(&self, settings: AlertSettings) {
        *lock(&self.0.settings) = settings;
    }

    pub fn stats(&self) -> Stats {
        Stats {
            raised: self.0.raised.load(Ordering::Relaxed),
            deduplicated: self.0.deduplicated.load(Ordering::Relaxed),
            dropped: self.0.dropped.load(Ordering::Relaxed),
            queued: QUEUE_CAPACITY - self.0.sender.capacity(),
            queue_capacity: QUEUE_CAPACITY,
        }
    }

    pub fn counts(&self) -> Counts {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Counts {
            raised: Kind::ALL
                .iter()
                .map(|kind| (*kind, load(&self.0.raised_by_kind[*kind as usize])))
                .collect(),
            dropped: load(&self.0.dropped),
            deliveries: DELIVERY_OUTCOMES
                .iter()
                .zip(&self.0.deliveries)
                .map(|(outcome, counter)| (*outcome, load(counter)))
                .collect(),
        }
    }

    /// One delivery's final outcome (after its retries), for `counts`.
    fn count_delivery(&self, outcome: &webhooks::Final) {
        let index = match outcome {
            webhooks::Final::Delivered => 0,
            webhooks::Final::Failed(_) => 1,
            webhooks::Final::RateLimited => 2,
        };
        self.0.deliveries[index].fetch_add(1, Ordering::Relaxed);
    }

    /// The last few alerts raised (newest last).
    pub fn recent(&self) -> Vec<Alert> {
        lock(&self.0.recent).clone()
    }

    fn http(&self) -> Result<reqwest::Client, String> {
        self.0.http.get_or_init(deliver::http_client).clone()
    }
}

/// Starts the delivery task and the monitor (`serve` calls this once; tests call it on their
/// state). Returns their handles so shutdown can stop them. A second call starts no second
/// delivery task.
pub async fn start(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    match settings::load(&state.db).await {
        Ok(settings) => state.alerts.apply_settings(settings),
        Err(err) => tracing::warn!(error = %err, "alert settings unreadable; using the defaults"),
    }
    let mut tasks = Vec::new();
    if let Some(receiver) = lock(&state.alerts.0.receiver).take() {
        tasks.push(tokio::spawn(deliver::run(state.clone(), receiver)));
    }
    tasks.push(tokio::spawn(monitor::run(state.clone())));
    tasks
}

/// Only the delivery task, without the monitor (tests that drive `Monitor` themselves).
pub fn start_delivery(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    let receiver = lock(&state.alerts.0.receiver).take()?;
    Some(tokio::spawn(deliver::run(state.clone(), receiver)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_kind_and_subject_raise_once_per_window() {
        let alerts = Alerts::default();
        let t0 = Instant::now();
        let raise = |subject: &str, at| {
            alerts.raise_at(
                Kind::ExternalSourceDown,
                subject.into(),
                "down".into(),
                Value::Null,
                at,
            )
        };
        assert_eq!(raise("a", t0), Raised::Queued);
        assert_eq!(raise("a", t0 + Duration::from_secs(60)), Raised::Duplicate);
        assert_eq!(
            raise("b", t0),
            Raised::Queued,
            "another subject is not a duplicate"
        );
        let window = alerts.settings().dedup_window();
        assert_eq!(raise("a", t0 + window), Raised::Queued, "the window ended");
        let stats = alerts.stats();
        assert_eq!((stats.raised, stats.deduplicated, stats.queued), (3, 1, 3));
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let alerts = Alerts::default();
        let t0 = Instant::now();
        for i in 0..QUEUE_CAPACITY {
            let raised = alerts.raise_at(
                Kind::ExternalSourceDown,
                format!("source-{i}"),
                "down".into(),
                Value::Null,
                t0,
            );
            assert_eq!(raised, Raised::Queued, "{i}");
        }
        assert_eq!(alerts.stats().queued, QUEUE_CAPACITY);
        let started = Instant::now();
        let over = alerts.raise_at(
            Kind::ExternalSourceDown,
            "one-more".into(),
            "down".into(),
            Value::Null,
            t0,
        );
        assert!(started.elapsed() < Duration::from_millis(50));
        assert_eq!(over, Raised::Dropped);
        assert_eq!(alerts.stats().dropped, 1);
        // A dropped alert is not remembered: once there is room it goes through.
        let mut receiver = lock(&alerts.0.receiver).take().unwrap();
        receiver.try_recv().unwrap();
        assert_eq!(
            alerts.raise_at(
                Kind::ExternalSourceDown,
                "one-more".into(),
                "down".into(),
                Value::Null,
                t0,
            ),
            Raised::Queued
        );
    }

    #[test]
    fn the_dedup_table_is_bounded_and_forgets_old_subjects() {
        let alerts = Alerts::default();
        // Room in the queue for everything: only the dedup table is at its bound here.
        let mut receiver = lock(&alerts.0.receiver).take().unwrap();
        let t0 = Instant::now();
        for i in 0..DEDUP_CAPACITY {
            let raised = alerts.raise_at(
                Kind::SignInFailures,
                format!("s{i}"),
                String::new(),
                Value::Null,
                t0,
            );
            assert_ne!(raised, Raised::Dropped, "{i}");
            while receiver.try_recv().is_ok() {}
        }
        assert_eq!(
            alerts.raise_at(
                Kind::SignInFailures,
                "new".into(),
                String::new(),
                Value::Null,
                t0
            ),
            Raised::Dropped
        );
        let later = t0 + alerts.settings().dedup_window();
        assert_eq!(
            alerts.raise_at(
                Kind::SignInFailures,
                "new".into(),
                String::new(),
                Value::Null,
                later
            ),
            Raised::Queued,
            "old subjects are forgotten to make room"
        );
    }

    #[test]
    fn sign_in_failures_raise_once_at_the_threshold_of_a_window() {
        let alerts = Alerts::default();
        alerts.apply_settings(AlertSettings {
            sign_in_failures: 3,
            sign_in_window_minutes: 1,
            dedup_window_minutes: 1,
            ..AlertSettings::default()
        });
        let t0 = Instant::now();
        for _ in 0..2 {
            alerts.sign_in_failed_at(t0);
        }
        assert_eq!(alerts.stats().raised, 0);
        alerts.sign_in_failed_at(t0 + Duration::from_secs(10));
        assert_eq!(alerts.stats().raised, 1);
        for _ in 0..10 {
            alerts.sign_in_failed_at(t0 + Duration::from_secs(20));
        }
        assert_eq!(alerts.stats().raised, 1, "once per window");
        // Failures spread over windows never reach the threshold.
        let alerts = Alerts::default();
        alerts.apply_settings(AlertSettings {
            sign_in_failures: 3,
            sign_in_window_minutes: 1,
            ..AlertSettings::default()
        });
        for minute in 0..10 {
            for _ in 0..2 {
                alerts.sign_in_failed_at(t0 + Duration::from_secs(61 * minute));
            }
        }
        assert_eq!(alerts.stats().raised, 0);
    }
}

//! The periodic checks behind the alerts that no single request sees: the sandbox's health
//! (unavailable, zygote crash loop) every `CHECK_EVERY`, and, each minute, approvals waiting
//! too long (and a reload of the alert settings, so a change on another replica applies here).
//!
//! The sandbox check is an ordinary `Sandbox::health` request, like `/health/ready`'s: while the
//! breaker is open it is refused (a failed check), and once the breaker's pause is over it may be
//! the half-open probe whose answer closes it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Row;

use super::{Alerts, Kind};
use crate::app::AppState;
use crate::error::Result;

const CHECK_EVERY: Duration = Duration::from_secs(15);
/// Approvals and settings are checked every this many sandbox checks (each minute).
const SLOW_EVERY: u32 = 4;
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// Failed health checks in a row before `SandboxUnavailable` (45 s at `CHECK_EVERY`).
pub const SANDBOX_DOWN_CHECKS: u32 = 3;
/// Zygote restarts within `CRASH_LOOP_WINDOW` that make a crash loop.
pub const CRASH_LOOP_RESTARTS: usize = 3;
pub const CRASH_LOOP_WINDOW: Duration = Duration::from_secs(600);

/// What the sandbox checks remember between two checks.
#[derive(Debug, Default)]
pub struct Monitor {
    failing_checks: u32,
    /// The supervisor's restart count at the previous answer.
    last_restarts: Option<u64>,
    /// When restarts were seen, within `CRASH_LOOP_WINDOW`.
    restarts: VecDeque<Instant>,
}

impl Monitor {
    /// Asks the sandbox for its health once and raises what the answer (or its absence) means.
    pub async fn check_sandbox(&mut self, state: &AppState) {
        let answer = match tokio::time::timeout(HEALTH_TIMEOUT, state.sandbox.health()).await {
            Ok(Ok(health)) => Ok(health.zygote_restarts),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err(format!("no answer within {} s", HEALTH_TIMEOUT.as_secs())),
        };
        self.observe(&state.alerts, answer, Instant::now());
    }

    fn observe(&mut self, alerts: &Alerts, answer: std::result::Result<u64, String>, now: Instant) {
        let restarts = match answer {
            Ok(restarts) => restarts,
            Err(error) => {
                self.failing_checks += 1;
                if self.failing_checks == SANDBOX_DOWN_CHECKS {
                    alerts.raise(
                        Kind::SandboxUnavailable,
                        "sandbox",
                        format!(
                            "the sandbox has not answered {SANDBOX_DOWN_CHECKS} health checks in \
                             a row, so no tool can run: {error}"
                        ),
                        json!({"failed_checks": self.failing_checks, "error": error}),
                    );
                }
                return;
            }
        };
        self.failing_checks = 0;
        // A supervisor that restarted itself counts from 0 again: a new baseline.
        let new = match self.last_restarts {
            Some(last) if restarts >= last => restarts - last,
            _ => 0,
        };
        self.last_restarts = Some(restarts);
        for _ in 0..new.min(CRASH_LOOP_RESTARTS as u64) {
            self.restarts.push_back(now);
        }
        while self
            .restarts
            .front()
            .is_some_and(|at| now.duration_since(*at) >= CRASH_LOOP_WINDOW)
        {
            self.restarts.pop_front();
        }
        while self.restarts.len() > CRASH_LOOP_RESTARTS {
            self.restarts.pop_front();
        }
        if new > 0 && self.restarts.len() >= CRASH_LOOP_RESTARTS {
            alerts.raise(
                Kind::ZygoteCrashLoop,
                "sandbox",
                format!(
                    "the sandbox zygote was restarted {} times within {} minutes ({restarts} since \
                     the supervisor started): tool calls fail while it is down",
                    self.restarts.len(),
                    CRASH_LOOP_WINDOW.as_secs() / 60
                ),
                json!({"zygote_restarts": restarts, "window_minutes": CRASH_LOOP_WINDOW.as_secs() / 60}),
            );
        }
    }
}

/// Raises `ApprovalsWaiting` when anything has waited longer than `approval_wait_minutes`:
/// tool versions pending review, module and network requests, sources added over MCP. One alert
/// for all of them (subject `approvals`), repeated after each dedup window while they wait.
pub async fn check_approvals(state: &AppState) -> Result<()> {
    let minutes = state.alerts.settings().approval_wait_minutes;
    let cutoff = crate::db::timestamp(chrono::Utc::now() - chrono::Duration::minutes(minutes));
    let row = sqlx::query(
        "SELECT \
         (SELECT COUNT(*) FROM tool_versions WHERE status = 'pending_review' AND requested_at < $1) AS tools, \
         (SELECT COUNT(*) FROM access_requests WHERE status = 'pending' AND created_at < $1) AS requests, \
         (SELECT COUNT(*) FROM external_sources WHERE status = 'pending_approval' AND created_at < $1) AS sources",
    )
    .bind(&cutoff)
    .fetch_one(&state.db.pool)
    .await?;
    let tools: i64 = row.try_get("tools")?;
    let requests: i64 = row.try_get("requests")?;
    let sources: i64 = row.try_get("sources")?;
    if tools + requests + sources > 0 {
        state.alerts.raise(
            Kind::ApprovalsWaiting,
            "approvals",
            format!(
                "waiting for approval for more than {minutes} minutes: {tools} tool version(s), \
                 {requests} module or network request(s), {sources} external source(s)"
            ),
            json!({
                "tool_versions": tools,
                "access_requests": requests,
                "external_sources": sources,
                "waiting_minutes": minutes,
            }),
        );
    }
    Ok(())
}

pub(super) async fn run(state: AppState) {
    let mut monitor = Monitor::default();
    let mut interval = tokio::time::interval(CHECK_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tick: u32 = 0;
    loop {
        interval.tick().await;
        monitor.check_sandbox(&state).await;
        if tick.is_multiple_of(SLOW_EVERY) {
            match super::settings::load(&state.db).await {
                Ok(settings) => state.alerts.apply_settings(settings),
                Err(err) => tracing::warn!(error = %err, "could not reload the alert settings"),
            }
            // One replica raises it (the jobs' lease, `db::locks`): the sandbox checks above
            // stay per replica, since each replica has its own sandbox.
            if state.jobs.held()
                && let Err(err) = check_approvals(&state).await
            {
                tracing::warn!(error = %err, "could not check for waiting approvals");
            }
        }
        tick = tick.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_failed_checks_in_a_row_raise_sandbox_unavailable_once() {
        let alerts = Alerts::default();
        let mut monitor = Monitor::default();
        let t0 = Instant::now();
        monitor.observe(&alerts, Err("down".into()), t0);
        monitor.observe(&alerts, Err("down".into()), t0);
        monitor.observe(&alerts, Ok(0), t0);
        monitor.observe(&alerts, Err("down".into()), t0);
        monitor.observe(&alerts, Err("down".into()), t0);
        assert_eq!(
            alerts.stats().raised,
            0,
            "an answer in between resets the count"
        );
        monitor.observe(&alerts, Err("down".into()), t0);
        assert_eq!(alerts.recent()[0].kind, Kind::SandboxUnavailable);
        for _ in 0..5 {
            monitor.observe(&alerts, Err("down".into()), t0);
        }
        assert_eq!(alerts.stats().raised, 1);
    }

    #[test]
    fn restarts_spread_out_are_not_a_crash_loop_but_three_close_together_are() {
        let alerts = Alerts::default();
        let mut monitor = Monitor::default();
        let t0 = Instant::now();
        monitor.observe(&alerts, Ok(0), t0);
        // One restart every 6 minutes: never three within 10.
        for i in 1..=5u64 {
            monitor.observe(&alerts, Ok(i), t0 + Duration::from_secs(360 * i));
        }
        assert_eq!(alerts.stats().raised, 0);
        let t1 = t0 + Duration::from_secs(3600);
        monitor.observe(&alerts, Ok(6), t1);
        monitor.observe(&alerts, Ok(8), t1 + Duration::from_secs(30));
        let recent = alerts.recent();
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].kind, Kind::ZygoteCrashLoop);
        assert_eq!(recent[0].details["zygote_restarts"], 8);
        // A supervisor restarted from scratch is a new baseline, not a negative count.
        monitor.observe(&alerts, Ok(0), t1 + Duration::from_secs(60));
        assert_eq!(alerts.stats().raised, 1);
    }
}

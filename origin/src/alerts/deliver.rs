//! The delivery task: alerts off the queue, to every enabled webhook.
//!
//! Each (alert, webhook) delivery runs on its own task (at most `IN_FLIGHT` at once), so a slow
//! or hanging receiver delays only itself. A try has a 5 s timeout; a network error, a timeout,
//! a 5xx or a 429 is retried (`TRIES` in all, backoff 1 s, 2 s, 4 s, or the receiver's
//! `Retry-After` up to `RETRY_AFTER_MAX`); any other answer is final. No redirects are followed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use super::webhooks::{self, Final, Flavour, Target};
use super::{Alert, lock};
use crate::app::AppState;

pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Tries per delivery, the first included.
pub const TRIES: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const RETRY_AFTER_MAX: Duration = Duration::from_secs(30);
/// Deliveries in flight at once; beyond, the task waits (the queue absorbs, then drops).
const IN_FLIGHT: usize = 16;
/// Text longer than this is cut (Discord refuses `content` over 2000 characters).
const DISCORD_MAX: usize = 1900;
const TEXT_MAX: usize = 4000;

/// One try's outcome.
#[derive(Debug)]
pub(super) enum Outcome {
    Delivered,
    /// Worth another try (network, timeout, 5xx, 429); the text says what happened.
    Retry(String),
    /// The receiver refused it; another try would be refused too.
    Permanent(String),
}

pub(super) fn http_client() -> Result<reqwest::Client, String> {
    // reqwest is built without a TLS provider of its own; ring is the one the workspace
    // already compiles. Installing twice is harmless (the first wins).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .user_agent(concat!("MCPbox/", env!("CARGO_PKG_VERSION"), " (alerts)"))
        .build()
        .map_err(|err| format!("the HTTP client cannot be built: {err}"))
}

pub(super) async fn run(state: AppState, mut queue: mpsc::Receiver<Alert>) {
    let client = match state.alerts.http() {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = err, "alerts cannot be delivered");
            return;
        }
    };
    let limiter = Arc::new(Limiter::default());
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(alert) = queue.recv().await {
        let targets = match webhooks::enabled_targets(&state).await {
            Ok(targets) => targets,
            Err(err) => {
                tracing::warn!(error = %err, kind = alert.kind.as_str(), "alert not delivered: the webhooks cannot be read");
                continue;
            }
        };
        let per_minute = state.alerts.settings().per_webhook_per_minute;
        let alert = Arc::new(alert);
        for target in targets {
            if !limiter.allow(&target.id, per_minute, Instant::now()) {
                tracing::warn!(
                    webhook_id = target.id,
                    kind = alert.kind.as_str(),
                    "alert not sent: the webhook is over its rate limit"
                );
                state.alerts.count_delivery(&Final::RateLimited);
                if let Err(err) =
                    webhooks::record_outcome(&state.db, &target.id, &Final::RateLimited).await
                {
                    tracing::warn!(error = %err, "could not record an alert delivery");
                }
                continue;
            }
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let (client, alert, db) = (client.clone(), alert.clone(), state.db.clone());
            let alerts = state.alerts.clone();
            tokio::spawn(async move {
                let outcome = deliver(&client, &target, &alert).await;
                alerts.count_delivery(&outcome);
                if let Err(err) = webhooks::record_outcome(&db, &target.id, &outcome).await {
                    tracing::warn!(error = %err, "could not record an alert delivery");
                }
                drop(slot);
            });
        }
    }
}

/// One delivery with its retries.
async fn deliver(client: &reqwest::Client, target: &Target, alert: &Alert) -> Final {
    let mut backoff = FIRST_BACKOFF;
    let mut last = String::new();
    for attempt in 1..=TRIES {
        match try_once(client, target, alert).await {
            (Outcome::Delivered, _) => return Final::Delivered,
            (Outcome::Permanent(error), _) => {
                tracing::warn!(
                    webhook_id = target.id,
                    kind = alert.kind.as_str(),
                    error,
                    "alert refused by the webhook"
                );
                return Final::Failed(error);
            }
            (Outcome::Retry(error), retry_after) => {
                tracing::warn!(
                    webhook_id = target.id,
                    kind = alert.kind.as_str(),
                    attempt,
                    error,
                    "alert delivery failed"
                );
                last = error;
                if attempt < TRIES {
                    let wait = retry_after.map_or(backoff, |wait| wait.min(RETRY_AFTER_MAX));
                    tokio::time::sleep(wait).await;
                    backoff *= 2;
                }
            }
        }
    }
    Final::Failed(format!("{last} ({TRIES} tries)"))
}

/// One try, without retries (the settings page's test button).
pub(super) async fn send_once(client: &reqwest::Client, target: &Target, alert: &Alert) -> Outcome {
    try_once(client, target, alert).await.0
}

async fn try_once(
    client: &reqwest::Client,
    target: &Target,
    alert: &Alert,
) -> (Outcome, Option<Duration>) {
    let sent = client
        .post(target.url.clone())
        .json(&payload(target.flavour, alert))
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(err) if err.is_timeout() => {
            return (
                Outcome::Retry(format!("no answer within {} s", TIMEOUT.as_secs())),
                None,
            );
        }
        // reqwest's message names the URL, which is a secret: say what failed without it.
        Err(err) => return (Outcome::Retry(describe(&err)), None),
    };
    let status = response.status();
    if status.is_success() {
        return (Outcome::Delivered, None);
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = format!("the webhook answered {}", status.as_u16());
    if status.is_server_error() || status.as_u16() == 429 {
        (Outcome::Retry(text), retry_after)
    } else {
        (Outcome::Permanent(text), None)
    }
}

fn describe(err: &reqwest::Error) -> String {
    if err.is_connect() {
        "could not connect".into()
    } else if err.is_redirect() {
        "the webhook answered with a redirect, which is not followed".into()
    } else if err.is_request() {
        "the request failed".into()
    } else {
        "the request failed on the way".into()
    }
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max).collect();
        cut.push('…');
        cut
    }
}

/// Slack's three escapes (`&`, `<`, `>`), which is all its message format needs.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The body each flavour expects (the reference's shapes; Discord's also turns mentions off).
pub fn payload(flavour: Flavour, alert: &Alert) -> Value {
    let severity = alert.kind.severity().as_str();
    let title = alert.kind.title();
    match flavour {
        // Messages may quote text from elsewhere (an external source's error): Slack's control
        // sequences (`<!channel>`, links) are escaped as Slack asks, and Discord is told to
        // notify nobody, so an alert can never ping a whole channel.
        Flavour::Slack => json!({
            "text": cut(&format!("*[{}] {title}*\n{}", severity.to_uppercase(), slack_escape(&alert.message)), TEXT_MAX),
        }),
        Flavour::Discord => json!({
            "content": cut(&format!("**[{}] {title}**\n{}", severity.to_uppercase(), alert.message), DISCORD_MAX),
            "allowed_mentions": {"parse": []},
        }),
        Flavour::Generic => {
            let mut details = match &alert.details {
                Value::Object(map) => map.clone(),
                Value::Null => serde_json::Map::new(),
                other => {
                    let mut map = serde_json::Map::new();
                    map.insert("value".into(), other.clone());
                    map
                }
            };
            details.insert("kind".into(), json!(alert.kind.as_str()));
            details.insert("subject".into(), json!(alert.subject));
            json!({
                "title": title,
                "message": cut(&alert.message, TEXT_MAX),
                "severity": severity,
                "timestamp": alert.timestamp,
                "details": details,
                "source": "mcpbox",
            })
        }
    }
}

/// Deliveries per webhook in the last minute (sliding window).
#[derive(Default)]
struct Limiter {
    sent: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Limiter {
    fn allow(&self, webhook: &str, per_minute: i64, now: Instant) -> bool {
        let mut sent = lock(&self.sent);
        // Webhooks that were deleted leave entries behind; they are few (MAX_WEBHOOKS
        // creations between sweeps at most grow it), swept when it grows past twice the bound.
        if sent.len() > 2 * webhooks::MAX_WEBHOOKS as usize {
            sent.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(60))
            });
        }
        let times = sent.entry(webhook.to_owned()).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            times.pop_front();
        }
        if times.len() as i64 >= per_minute.max(1) {
            return false;
        }
        times.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Kind;

    fn alert() -> Alert {
        Alert {
            kind: Kind::BreakerOpened,
            subject: "sandbox".into(),
            message: "it opened".into(),
            details: json!({"failures": 5}),
            timestamp: "2026-12-01T20:00:00.000000Z".into(),
        }
    }

    #[test]
    fn each_flavour_gets_its_shape() {
        let slack = payload(Flavour::Slack, &alert());
        assert_eq!(
            slack,
            json!({"text": "*[CRITICAL] Sandbox circuit breaker opened*\nit opened"})
        );
        let discord = payload(Flavour::Discord, &alert());
        assert_eq!(
            discord,
            json!({
                "content": "**[CRITICAL] Sandbox circuit breaker opened**\nit opened",
                "allowed_mentions": {"parse": []},
            })
        );
        // Text from elsewhere cannot ping a channel.
        let hostile = Alert {
            message: "down: <!channel> @everyone <https://evil.example|click> & more".into(),
            ..alert()
        };
        let text = payload(Flavour::Slack, &hostile)["text"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            !text.contains("<!channel>") && !text.contains("<https"),
            "{text}"
        );
        assert!(text.contains("&lt;!channel&gt;") && text.contains("&amp; more"));
        let generic = payload(Flavour::Generic, &alert());
        assert_eq!(
            generic,
            json!({
                "title": "Sandbox circuit breaker opened",
                "message": "it opened",
                "severity": "critical",
                "timestamp": "2026-12-01T20:00:00.000000Z",
                "details": {"failures": 5, "kind": "breaker_opened", "subject": "sandbox"},
                "source": "mcpbox",
            })
        );
        let long = Alert {
            message: "x".repeat(5000),
            ..alert()
        };
        let content = payload(Flavour::Discord, &long)["content"]
            .as_str()
            .unwrap()
            .chars()
            .count();
        assert!(content <= 2000, "{content}");
    }

    #[test]
    fn the_rate_limit_is_per_webhook_per_minute() {
        let limiter = Limiter::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.allow("a", 3, t0));
        }
        assert!(!limiter.allow("a", 3, t0 + Duration::from_secs(30)));
        assert!(
            limiter.allow("b", 3, t0),
            "another webhook has its own budget"
        );
        assert!(limiter.allow("a", 3, t0 + Duration::from_secs(60)));
    }
}

//! Request rate limits: the one rule (`Limiter::check`, a token bucket kept as GCRA) and the
//! headers that describe it, used by the admin listener's guard (`guard`: `/api/…`, `/auth/…`
//! and local `/mcp` per client address, API bearer tokens also per account) and by the tunnel
//! listener (per signed-in remote user, `gateway::tunnel`).
//!
//! A bucket holds `burst` requests and refills at `per_minute`; a bucket is one `Instant` (the
//! time it will be full again), so a full bucket carries no information and can be forgotten.
//! The table is capped (`Limiter::new`): past the cap, full buckets go first, then the fullest
//! tenth (the least throttled clients, whose loss gives them back at most one burst). State is
//! in memory and per replica, except the tunnel's per-user limit on PostgreSQL, which several
//! replicas share through `shared` (the same rule, in the database). Behind a load balancer the
//! admin listener's per-address limits see the balancer's address and count per replica: each
//! replica allows the whole limit, so N replicas allow N times it (README, "Running several
//! origins"). Limits live in the settings (`limits`, REST in `api`).

pub mod api;
pub mod guard;
pub mod limits;
pub mod shared;

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

pub use limits::{Limits, RateLimits};

/// One limit: a bucket of `burst` requests, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ratelimit::Rule)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Sustained requests per minute (1 to 1 000 000).
    pub per_minute: u32,
    /// Requests that may arrive at once before the rate applies (1 to 100 000).
    pub burst: u32,
}

impl Rule {
    /// The time one request's token takes to come back.
    fn interval(self) -> Duration {
        Duration::from_nanos(60_000_000_000 / u64::from(self.per_minute.max(1)))
    }

    /// How long a request may run ahead of the rate: the rest of the burst.
    fn tolerance(self) -> Duration {
        self.interval() * self.burst.max(1).saturating_sub(1)
    }

    /// Seconds an empty bucket takes to fill: the `w` of `RateLimit-Policy`.
    fn window_secs(self) -> u64 {
        (self.interval() * self.burst.max(1)).as_secs().max(1)
    }
}

/// Where one key stands after a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The policy's name in the `RateLimit` headers.
    pub policy: &'static str,
    pub rule: Rule,
    /// Requests left in the bucket now.
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset: Duration,
}

/// The outcome of `Limiter::check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Counted against every key.
    Allowed(Vec<Standing>),
    /// Counted against none; `retry_after` is when the emptiest bucket has a token again.
    Refused {
        retry_after: Duration,
        standings: Vec<Standing>,
    },
}

/// Buckets by key, at most `cap` of them. A std mutex: held for a map operation only.
pub struct Limiter<K> {
    buckets: Mutex<HashMap<K, Instant>>,
    cap: usize,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(cap: usize) -> Limiter<K> {
        Limiter {
            buckets: Mutex::new(HashMap::new()),
            cap: cap.max(10),
        }
    }

    /// Buckets held now (for tests of the cap).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rule: a request takes one token from the bucket of each `(key, policy, rule)`; it
    /// passes only if every bucket has one, and then all of them are charged (under one lock, so
    /// concurrent requests cannot all pass a check before any is counted).
    pub fn check(&self, keys: &[(K, &'static str, Rule)], now: Instant) -> Verdict {
        let mut buckets = self.lock();
        // When each bucket will be full again (now, for a new or full one).
        let tats: Vec<Instant> = keys
            .iter()
            .map(|(key, _, _)| buckets.get(key).copied().unwrap_or(now).max(now))
            .collect();
        let retry_after = keys
            .iter()
            .zip(&tats)
            .map(|((_, _, rule), tat)| (*tat - now).saturating_sub(rule.tolerance()))
            .max()
            .unwrap_or_default();
        if retry_after > Duration::ZERO {
            let standings = keys
                .iter()
                .zip(&tats)
                .map(|((_, policy, rule), tat)| standing(policy, *rule, *tat - now))
                .collect();
            return Verdict::Refused {
                retry_after,
                standings,
            };
        }
        let next: Vec<Instant> = keys
            .iter()
            .zip(&tats)
            .map(|((_, _, rule), tat)| *tat + rule.interval())
            .collect();
        let standings = keys
            .iter()
            .zip(&next)
            .map(|((_, policy, rule), charged)| standing(policy, *rule, *charged - now))
            .collect();
        for ((key, _, _), charged) in keys.iter().zip(next) {
            if !buckets.contains_key(key) && buckets.len() >= self.cap {
                self.make_room(&mut buckets, now);
            }
            buckets.insert(key.clone(), charged);
        }
        Verdict::Allowed(standings)
    }

    /// Forgets full buckets (nothing is lost); if every bucket is in use, the fullest tenth.
    fn make_room(&self, buckets: &mut HashMap<K, Instant>, now: Instant) {
        buckets.retain(|_, tat| *tat > now);
        if buckets.len() < self.cap {
            return;
        }
        let evict = (self.cap / 10).max(1);
        let mut tats: Vec<Instant> = buckets.values().copied().collect();
        let (_, threshold, _) = tats.select_nth_unstable(evict - 1);
        let threshold = *threshold;
        buckets.retain(|_, tat| *tat > threshold);
        tracing::warn!(
            cap = self.cap,
            "rate-limit table full of active clients; forgot the least throttled"
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Instant>> {
        self.buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `ahead`: how far the bucket's full time is past now.
fn standing(policy: &'static str, rule: Rule, ahead: Duration) -> Standing {
    let interval = rule.interval();
    let capacity = interval * rule.burst.max(1);
    let free = capacity.saturating_sub(ahead);
    Standing {
        policy,
        rule,
        remaining: (free.as_nanos() / interval.as_nanos().max(1)) as u32,
        reset: ahead,
    }
}

/// The key of a client address: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64, since one
/// host or customer usually holds a whole /64 and could otherwise take a fresh bucket per
/// request.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// Whole seconds, rounded up (a client told 0 would retry at once).
fn ceil_secs(duration: Duration) -> u64 {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    secs.max(1)
}

/// Describes the buckets a response was charged to: `RateLimit-Policy` and `RateLimit`
/// (draft-ietf-httpapi-ratelimit-headers: `q` = burst, `w` = seconds to refill it, `r` = left,
/// `t` = seconds until full), and `X-RateLimit-Limit/Remaining/Reset` for the tightest bucket
/// (the one with the fewest requests left; `Reset` is a Unix time, as GitHub's).
pub fn write_headers(headers: &mut HeaderMap, standings: &[Standing]) {
    let Some(tightest) = standings.iter().min_by_key(|s| s.remaining) else {
        return;
    };
    let policy: Vec<String> = standings
        .iter()
        .map(|s| {
            format!(
                "\"{}\";q={};w={}",
                s.policy,
                s.rule.burst,
                s.rule.window_secs()
            )
        })
        .collect();
    let current: Vec<String> = standings
        .iter()
        .map(|s| {
            let reset = if s.reset.is_zero() {
                0
            } else {
                ceil_secs(s.reset)
            };
            format!("\"{}\";r={};t={}", s.policy, s.remaining, reset)
        })
        .collect();
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let values = [
        ("ratelimit-policy", policy.join(", ")),
        ("ratelimit", current.join(", ")),
        ("x-ratelimit-limit", tightest.rule.burst.to_string()),
        ("x-ratelimit-remaining", tightest.remaining.to_string()),
        (
            "x-ratelimit-reset",
            (unix_now + ceil_secs(tightest.reset)).to_string(),
        ),
    ];
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// `Retry-After` in whole seconds, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    ceil_secs(wait)
}

/// A 429 for `/mcp` callers: a JSON-RPC error without an id (the shape `gateway::sessions`
/// refuses with, which MCP clients show), with `Retry-After` and the rate-limit headers.
pub fn refused_mcp(
    retry_after: Duration,
    standings: &[Standing],
    message: &str,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let secs = retry_after_secs(retry_after);
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": -32000, "message": message, "data": {"retry_after": secs}},
    });
    let mut response =
        (axum::http::StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    write_headers(response.headers_mut(), standings);
    response
        .headers_mut()
        .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

#[cfg(test)]
mod tests;

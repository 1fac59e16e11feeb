//! The configured limits: one settings row (`rate_limits`, JSON), read through a short-lived
//! cache in `AppState` so a request costs no query, and replaced by `set_recorded` (REST, UI),
//! which applies at once on this replica (others pick it up within `REFRESH`).

use std::sync::RwLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Limiter, Rule, guard::Key};
use crate::activity::{Audit, NewEvent};
use crate::app::AppState;
use crate::db::{self, Db};
use crate::error::{Error, Result};

const SETTINGS_KEY: &str = "rate_limits";
/// How long a read of the settings row is used before it is read again (a change made by
/// another process, another replica or a restore shows within this).
const REFRESH: Duration = Duration::from_secs(10);
/// Buckets the admin listener's table holds at most (about 100 bytes each).
pub const TABLE_CAP: usize = 20_000;
const MAX_PER_MINUTE: u32 = 1_000_000;
const MAX_BURST: u32 = 100_000;

/// Every limit of the admin listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ratelimit::Limits)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// `/api/…` and `/auth/…`, per client address.
    pub api_per_address: Rule,
    /// `/api/…` and `/auth/…` with a valid API bearer token, per account (whatever the address).
    pub api_per_account: Rule,
    /// `/mcp` on the local listener, per client address.
    pub mcp_per_address: Rule,
}

impl Default for Limits {
    /// Far above what a person, a script or a local MCP client needs, and above what the test
    /// suites send (the README lists the figures); low enough that a runaway loop is stopped.
    fn default() -> Self {
        Limits {
            api_per_address: Rule {
                per_minute: 600,
                burst: 200,
            },
            api_per_account: Rule {
                per_minute: 600,
                burst: 200,
            },
            mcp_per_address: Rule {
                per_minute: 1200,
                burst: 300,
            },
        }
    }
}

impl Limits {
    fn validate(&self) -> Result<()> {
        for (name, rule) in [
            ("api_per_address", self.api_per_address),
            ("api_per_account", self.api_per_account),
            ("mcp_per_address", self.mcp_per_address),
        ] {
            if !(1..=MAX_PER_MINUTE).contains(&rule.per_minute) {
                return Err(Error::Validation(format!(
                    "{name}.per_minute must be between 1 and {MAX_PER_MINUTE}"
                )));
            }
            if !(1..=MAX_BURST).contains(&rule.burst) {
                return Err(Error::Validation(format!(
                    "{name}.burst must be between 1 and {MAX_BURST}"
                )));
            }
        }
        Ok(())
    }
}

/// Part of a rule; missing fields keep their value.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = ratelimit::RulePatch)]
#[serde(deny_unknown_fields)]
pub struct RulePatch {
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub per_minute: Option<u32>,
    #[schema(minimum = 1, maximum = 100_000)]
    pub burst: Option<u32>,
}

/// Any subset of the limits; the result must be valid as a whole.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = ratelimit::LimitsPatch)]
#[serde(deny_unknown_fields)]
pub struct LimitsPatch {
    pub api_per_address: Option<RulePatch>,
    pub api_per_account: Option<RulePatch>,
    pub mcp_per_address: Option<RulePatch>,
}

impl LimitsPatch {
    fn apply(&self, current: Limits) -> Limits {
        let rule = |base: Rule, patch: Option<RulePatch>| {
            let patch = patch.unwrap_or_default();
            Rule {
                per_minute: patch.per_minute.unwrap_or(base.per_minute),
                burst: patch.burst.unwrap_or(base.burst),
            }
        };
        Limits {
            api_per_address: rule(current.api_per_address, self.api_per_address),
            api_per_account: rule(current.api_per_account, self.api_per_account),
            mcp_per_address: rule(current.mcp_per_address, self.mcp_per_address),
        }
    }
}

/// The limits as stored (the defaults while nothing is).
pub async fn stored(db: &Db) -> Result<Limits> {
    let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
        .bind(SETTINGS_KEY)
        .fetch_optional(&db.pool)
        .await?;
    let Some(row) = row else {
        return Ok(Limits::default());
    };
    let value: String = row.try_get("value")?;
    match serde_json::from_str::<Limits>(&value) {
        Ok(limits) if limits.validate().is_ok() => Ok(limits),
        _ => {
            tracing::warn!("the stored rate limits are unreadable; using the defaults");
            Ok(Limits::default())
        }
    }
}

/// Applies `patch` to the stored limits, writes the result, uses it at once, and records the
/// change. REST and UI.
pub async fn set_recorded(state: &AppState, patch: &LimitsPatch, audit: &Audit) -> Result<Limits> {
    let next = patch.apply(stored(&state.db).await?);
    next.validate()?;
    let value = serde_json::to_string(&next)
        .map_err(|err| Error::Internal(anyhow::anyhow!("rate limits: {err}")))?;
    sqlx::query(
        "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET value = $2, updated_at = $3",
    )
    .bind(SETTINGS_KEY)
    .bind(value)
    .bind(db::now())
    .execute(&state.db.pool)
    .await?;
    state.rate_limits.remember(next, Instant::now());
    let event = NewEvent::warning("settings.rate_limits", "rate limits changed")
        .details(serde_json::to_value(next).unwrap_or_default());
    crate::activity::record_now(state, audit, event).await?;
    Ok(next)
}

/// The admin listener's limiter and the limits it applies (in `AppState`).
pub struct RateLimits {
    pub limiter: Limiter<Key>,
    current: RwLock<Option<(Limits, Instant)>>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            limiter: Limiter::new(TABLE_CAP),
            current: RwLock::new(None),
        }
    }
}

impl RateLimits {
    /// The limits to apply now: cached, or read again when older than `REFRESH`. If the
    /// database cannot be read, the last known limits (or the defaults) apply: a database
    /// problem is reported by the request itself, not turned into a refusal here.
    pub async fn current(&self, db: &Db, now: Instant) -> Limits {
        let cached = *self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match cached {
            Some((limits, read)) if now.duration_since(read) < REFRESH => limits,
            _ => match stored(db).await {
                Ok(limits) => {
                    self.remember(limits, now);
                    limits
                }
                Err(err) => {
                    tracing::warn!(error = %err, "could not read the rate limits");
                    cached.map(|(limits, _)| limits).unwrap_or_default()
                }
            },
        }
    }

    fn remember(&self, limits: Limits, now: Instant) {
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((limits, now));
    }
}

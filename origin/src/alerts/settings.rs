//! The alert thresholds, stored in the `settings` table under `alerts.*` (unset keys take the
//! defaults), validated as a whole before anything is written.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::db::{self, Db};
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = alerts::Settings)]
pub struct AlertSettings {
    /// The same kind and subject raise one alert within this many minutes (1 to 1440).
    pub dedup_window_minutes: i64,
    /// An approval waiting longer than this many minutes raises `approvals_waiting` (1 to 10080).
    pub approval_wait_minutes: i64,
    /// This many failed sign-ins (3 to 100000) …
    pub sign_in_failures: i64,
    /// … within this many minutes (1 to 1440) raise `sign_in_failures`.
    pub sign_in_window_minutes: i64,
    /// At most this many deliveries a minute to one webhook (1 to 600); the rest are skipped
    /// and counted on the webhook.
    pub per_webhook_per_minute: i64,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            dedup_window_minutes: 15,
            approval_wait_minutes: 60,
            sign_in_failures: 20,
            sign_in_window_minutes: 5,
            per_webhook_per_minute: 10,
        }
    }
}

const PREFIX: &str = "alerts.";

/// (name, lowest, highest) of every setting.
const RANGES: [(&str, i64, i64); 5] = [
    ("dedup_window_minutes", 1, 1440),
    ("approval_wait_minutes", 1, 10_080),
    ("sign_in_failures", 3, 100_000),
    ("sign_in_window_minutes", 1, 1440),
    ("per_webhook_per_minute", 1, 600),
];

impl AlertSettings {
    pub fn dedup_window(&self) -> Duration {
        Duration::from_secs(self.dedup_window_minutes.max(1) as u64 * 60)
    }

    fn values(&self) -> [i64; 5] {
        [
            self.dedup_window_minutes,
            self.approval_wait_minutes,
            self.sign_in_failures,
            self.sign_in_window_minutes,
            self.per_webhook_per_minute,
        ]
    }

    fn set(&mut self, name: &str, value: i64) {
        match name {
            "dedup_window_minutes" => self.dedup_window_minutes = value,
            "approval_wait_minutes" => self.approval_wait_minutes = value,
            "sign_in_failures" => self.sign_in_failures = value,
            "sign_in_window_minutes" => self.sign_in_window_minutes = value,
            "per_webhook_per_minute" => self.per_webhook_per_minute = value,
            _ => {}
        }
    }

    pub fn validate(&self) -> Result<()> {
        for ((name, low, high), value) in RANGES.iter().zip(self.values()) {
            if !(*low..=*high).contains(&value) {
                return Err(Error::Validation(format!(
                    "{name} must be between {low} and {high}"
                )));
            }
        }
        Ok(())
    }
}

/// The stored settings; a stored value that is unreadable or out of range keeps its default.
pub async fn load(db: &Db) -> Result<AlertSettings> {
    let rows = sqlx::query("SELECT key, value FROM settings WHERE key LIKE 'alerts.%'")
        .fetch_all(&db.pool)
        .await?;
    let mut settings = AlertSettings::default();
    for row in rows {
        let key: String = row.try_get("key")?;
        let value: String = row.try_get("value")?;
        let name = key.trim_start_matches(PREFIX);
        if let (Ok(value), Some((_, low, high))) =
            (value.parse::<i64>(), RANGES.iter().find(|r| r.0 == name))
            && (*low..=*high).contains(&value)
        {
            settings.set(name, value);
        }
    }
    Ok(settings)
}

/// Validates, then writes every setting in one transaction.
pub async fn store(db: &Db, settings: &AlertSettings) -> Result<()> {
    settings.validate()?;
    let now = db::now();
    let mut tx = db.pool.begin().await?;
    for ((name, _, _), value) in RANGES.iter().zip(settings.values()) {
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = $2, updated_at = $3",
        )
        .bind(format!("{PREFIX}{name}"))
        .bind(value.to_string())
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Stores new settings, applies them on this replica at once and records the change (REST, UI).
pub async fn store_recorded(
    state: &crate::app::AppState,
    settings: &AlertSettings,
    audit: &crate::activity::Audit,
) -> Result<()> {
    store(&state.db, settings).await?;
    state.alerts.apply_settings(settings.clone());
    let event = crate::activity::NewEvent::info("alerts.settings", "alert settings changed")
        .details(serde_json::to_value(settings).unwrap_or_default());
    crate::activity::record_now(state, audit, event).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_every_bound_is_checked() {
        AlertSettings::default().validate().unwrap();
        for (name, low, high) in RANGES {
            for bad in [low - 1, high + 1] {
                let mut settings = AlertSettings::default();
                settings.set(name, bad);
                let err = settings.validate().unwrap_err().to_string();
                assert!(err.contains(name), "{name} = {bad}: {err}");
            }
            for good in [low, high] {
                let mut settings = AlertSettings::default();
                settings.set(name, good);
                settings.validate().unwrap();
            }
        }
    }
}

//! Alert webhooks in storage: several allowed (`MAX_WEBHOOKS`), the URL encrypted with the
//! `Keyring` (AAD `alert_webhook:{id}`) and shown only masked, the outcome of the last delivery
//! on the row.
//!
//! URLs: `https://` anywhere, or `http://` only to a loopback host (`localhost`, 127.0.0.0/8,
//! `::1`): a Slack or Discord URL is a credential and must not cross a network in the clear. A
//! private address over https (a receiver on the admin's own LAN) is the admin's choice and is
//! allowed, as for external sources. No redirects are followed (`deliver::http_client`), so a
//! receiver cannot bounce a delivery elsewhere.

use std::net::IpAddr;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::deliver::Outcome;
use crate::activity::{self, Audit, NewEvent};
use crate::app::AppState;
use crate::crypto::Keyring;
use crate::db::{self, Db};
use crate::error::{Error, OnConflict, Result};

/// Webhooks one MCPbox keeps; creating more is refused.
pub const MAX_WEBHOOKS: i64 = 20;
pub const NAME_MAX: usize = 64;
pub const URL_MAX: usize = 2048;

/// Which payload a webhook gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = alerts::Flavour)]
#[serde(rename_all = "snake_case")]
pub enum Flavour {
    /// `{"text": …}`
    Slack,
    /// `{"content": …}`
    Discord,
    /// `{title, message, severity, timestamp, details, source}`
    Generic,
}

impl Flavour {
    pub fn parse(text: &str) -> Result<Flavour> {
        match text {
            "slack" => Ok(Flavour::Slack),
            "discord" => Ok(Flavour::Discord),
            "generic" => Ok(Flavour::Generic),
            other => Err(Error::Validation(format!(
                "unknown flavour {other:?} (use slack, discord or generic)"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::Slack => "slack",
            Flavour::Discord => "discord",
            Flavour::Generic => "generic",
        }
    }
}

/// A webhook as both fronts show it: never its URL, only `url_masked`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = alerts::Webhook)]
pub struct Webhook {
    pub id: String,
    pub name: String,
    pub flavour: Flavour,
    /// Scheme, host and the URL's last four characters.
    pub url_masked: String,
    pub enabled: bool,
    /// The last delivery's outcome after its retries: `delivered`, `failed` or
    /// `rate_limited`; null before the first.
    pub last_status: Option<String>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<String>,
    pub last_delivered_at: Option<String>,
    pub delivered_count: i64,
    pub failed_count: i64,
    pub rate_limited_count: i64,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str = "id, name, flavour, url_masked, enabled, last_status, last_error, \
     last_attempt_at, last_delivered_at, delivered_count, failed_count, rate_limited_count, \
     created_by, created_at, updated_at";

impl Webhook {
    fn from_row(row: &AnyRow) -> Result<Webhook> {
        let flavour: String = row.try_get("flavour")?;
        Ok(Webhook {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            flavour: Flavour::parse(&flavour)?,
            url_masked: row.try_get("url_masked")?,
            enabled: row.try_get::<i64, _>("enabled")? != 0,
            last_status: row.try_get("last_status")?,
            last_error: row.try_get("last_error")?,
            last_attempt_at: row.try_get("last_attempt_at")?,
            last_delivered_at: row.try_get("last_delivered_at")?,
            delivered_count: row.try_get("delivered_count")?,
            failed_count: row.try_get("failed_count")?,
            rate_limited_count: row.try_get("rate_limited_count")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// Where a delivery goes: the decrypted URL, held only by the delivery task.
#[derive(Clone)]
pub(super) struct Target {
    pub id: String,
    pub flavour: Flavour,
    pub url: reqwest::Url,
}

/// `https://` anywhere, `http://` to loopback only; a host, no fragment.
pub fn check_url(text: &str) -> Result<reqwest::Url> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::Validation("the webhook URL is missing".into()));
    }
    if text.len() > URL_MAX {
        return Err(Error::Validation(format!(
            "the webhook URL is longer than {URL_MAX} characters"
        )));
    }
    let url = reqwest::Url::parse(text)
        .map_err(|err| Error::Validation(format!("the webhook URL is not valid: {err}")))?;
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(Error::Validation("the webhook URL has no host".into()));
    };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => {
            return Err(Error::Validation(
                "a webhook URL carries its credential: use https:// (http:// only to this \
                 machine, e.g. http://127.0.0.1)"
                    .into(),
            ));
        }
        other => {
            return Err(Error::Validation(format!(
                "the URL scheme {other:?} is refused: webhooks are https:// URLs"
            )));
        }
    }
    if url.fragment().is_some() {
        return Err(Error::Validation(
            "the webhook URL may not have a #fragment".into(),
        ));
    }
    Ok(url)
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `https://hooks.slack.com/…abcd`: enough to tell webhooks apart, never the token.
pub fn mask(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("");
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let text = url.as_str();
    let tail: String = text
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{}://{host}{port}/…{tail}", url.scheme())
}

fn aad(id: &str) -> String {
    format!("alert_webhook:{id}")
}

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > NAME_MAX {
        return Err(Error::Validation(format!(
            "the webhook name must be 1 to {NAME_MAX} characters long"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::Validation(
            "the webhook name may not contain control characters".into(),
        ));
    }
    Ok(name.to_owned())
}

pub async fn list(db: &Db) -> Result<Vec<Webhook>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM alert_webhooks ORDER BY name"
    ))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(Webhook::from_row).collect()
}

pub async fn get(db: &Db, id: &str) -> Result<Webhook> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM alert_webhooks WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| Error::NotFound("no such webhook".into()))?;
    Webhook::from_row(&row)
}

pub struct NewWebhook<'a> {
    pub name: &'a str,
    pub flavour: &'a str,
    pub url: &'a str,
    pub enabled: bool,
}

/// Creates a webhook (validated first; at most `MAX_WEBHOOKS`, counted by the INSERT itself in a
/// transaction that, on PostgreSQL, first locks the table against other writers, so creations
/// at the same moment cannot pass the bound; SQLite has one writer at a time anyway) and
/// records it.
pub async fn create_recorded(
    state: &AppState,
    new: NewWebhook<'_>,
    audit: &Audit,
) -> Result<Webhook> {
    let name = check_name(new.name)?;
    let flavour = Flavour::parse(new.flavour)?;
    let url = check_url(new.url)?;
    let id = db::new_id();
    let now = db::now();
    let mut tx = state.db.pool.begin().await?;
    if state.db.backend == crate::db::Backend::Postgres {
        sqlx::query("LOCK TABLE alert_webhooks IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
    }
    let inserted = sqlx::query(
        "INSERT INTO alert_webhooks (id, name, flavour, url_encrypted, url_masked, enabled, \
         created_by, created_at, updated_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $8 \
         WHERE (SELECT COUNT(*) FROM alert_webhooks) < $9",
    )
    .bind(&id)
    .bind(&name)
    .bind(flavour.as_str())
    .bind(state.keys.encrypt_to_string(url.as_str(), &aad(&id)))
    .bind(mask(&url))
    .bind(i64::from(new.enabled))
    .bind(&audit.actor)
    .bind(&now)
    .bind(MAX_WEBHOOKS)
    .execute(&mut *tx)
    .await
    .on_conflict(|| format!("a webhook named {name:?} already exists"))?;
    if inserted.rows_affected() == 0 {
        return Err(Error::Conflict(format!(
            "there are already {MAX_WEBHOOKS} webhooks, the most MCPbox keeps: delete one first"
        )));
    }
    tx.commit().await?;
    let event = NewEvent::warning(
        "alerts.webhook_create",
        format!("alert webhook {name} added"),
    )
    .details(serde_json::json!({"webhook_id": id, "flavour": flavour.as_str(), "url": mask(&url)}));
    activity::record_now(state, audit, event).await?;
    get(&state.db, &id).await
}

/// What an update may change; `None` keeps the current value.
#[derive(Default)]
pub struct Change<'a> {
    pub name: Option<&'a str>,
    pub flavour: Option<&'a str>,
    pub url: Option<&'a str>,
    pub enabled: Option<bool>,
}

pub async fn update_recorded(
    state: &AppState,
    id: &str,
    change: Change<'_>,
    audit: &Audit,
) -> Result<Webhook> {
    let current = get(&state.db, id).await?;
    let name = match change.name {
        Some(name) => check_name(name)?,
        None => current.name.clone(),
    };
    let flavour = match change.flavour {
        Some(flavour) => Flavour::parse(flavour)?,
        None => current.flavour,
    };
    let url = change.url.map(check_url).transpose()?;
    let enabled = change.enabled.unwrap_or(current.enabled);
    let now = db::now();
    let mut query = String::from(
        "UPDATE alert_webhooks SET name = $1, flavour = $2, enabled = $3, updated_at = $4",
    );
    if url.is_some() {
        // A new URL is a new receiver: its predecessor's delivery record does not describe it.
        query.push_str(
            ", url_encrypted = $6, url_masked = $7, last_status = NULL, last_error = NULL, \
             last_attempt_at = NULL, last_delivered_at = NULL",
        );
    }
    query.push_str(" WHERE id = $5");
    let mut update = sqlx::query(&query)
        .bind(&name)
        .bind(flavour.as_str())
        .bind(i64::from(enabled))
        .bind(&now)
        .bind(id);
    if let Some(url) = &url {
        update = update
            .bind(state.keys.encrypt_to_string(url.as_str(), &aad(id)))
            .bind(mask(url));
    }
    let updated = update
        .execute(&state.db.pool)
        .await
        .on_conflict(|| format!("a webhook named {name:?} already exists"))?;
    if updated.rows_affected() == 0 {
        return Err(Error::NotFound("no such webhook".into()));
    }
    let event = NewEvent::warning(
        "alerts.webhook_update",
        format!("alert webhook {name} changed"),
    )
    .details(serde_json::json!({
        "webhook_id": id,
        "flavour": flavour.as_str(),
        "enabled": enabled,
        "url_changed": url.is_some(),
    }));
    activity::record_now(state, audit, event).await?;
    get(&state.db, id).await
}

pub async fn delete_recorded(state: &AppState, id: &str, audit: &Audit) -> Result<()> {
    let current = get(&state.db, id).await?;
    let deleted = sqlx::query("DELETE FROM alert_webhooks WHERE id = $1")
        .bind(id)
        .execute(&state.db.pool)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound("no such webhook".into()));
    }
    let event = NewEvent::warning(
        "alerts.webhook_delete",
        format!("alert webhook {} deleted", current.name),
    )
    .details(serde_json::json!({"webhook_id": id}));
    activity::record_now(state, audit, event).await
}

/// Sends a test alert to one webhook now (one try, the usual 5 s timeout), records the outcome
/// like any delivery, and returns the webhook with it.
pub async fn test_recorded(state: &AppState, id: &str, audit: &Audit) -> Result<Webhook> {
    let webhook = get(&state.db, id).await?;
    let target = target_of(state, id).await?;
    let alert = super::Alert {
        kind: super::Kind::Test,
        subject: "test".into(),
        message: format!(
            "A test alert from MCPbox, sent by {} to the webhook {}",
            audit.actor, webhook.name
        ),
        details: serde_json::json!({"requested_by": audit.actor}),
        timestamp: db::now(),
    };
    let client = state
        .alerts
        .http()
        .map_err(|err| Error::Internal(anyhow::anyhow!(err)))?;
    let outcome = super::deliver::send_once(&client, &target, &alert).await;
    let outcome = outcome.into_final();
    state.alerts.count_delivery(&outcome);
    record_outcome(&state.db, id, &outcome).await?;
    let event = NewEvent::info(
        "alerts.webhook_test",
        format!("test alert sent to webhook {}", webhook.name),
    )
    .details(serde_json::json!({"webhook_id": id}));
    activity::record_now(state, audit, event).await?;
    get(&state.db, id).await
}

async fn target_of(state: &AppState, id: &str) -> Result<Target> {
    let row = sqlx::query("SELECT id, flavour, url_encrypted FROM alert_webhooks WHERE id = $1")
        .bind(id)
        .fetch_optional(&state.db.pool)
        .await?
        .ok_or_else(|| Error::NotFound("no such webhook".into()))?;
    decrypt_target(&state.keys, &row)?.ok_or_else(|| {
        Error::Conflict(
            "the webhook's URL does not decrypt with the configured keys: set it again".into(),
        )
    })
}

/// A row's target, or `None` (logged) when its URL does not decrypt or parse.
fn decrypt_target(keys: &Keyring, row: &AnyRow) -> Result<Option<Target>> {
    let id: String = row.try_get("id")?;
    let flavour: String = row.try_get("flavour")?;
    let stored: String = row.try_get("url_encrypted")?;
    let url = match keys.decrypt_str(&stored, &aad(&id)) {
        Ok(url) => url,
        Err(err) => {
            tracing::error!(webhook_id = id, error = %err, "an alert webhook's URL does not decrypt");
            return Ok(None);
        }
    };
    let Ok(url) = reqwest::Url::parse(&url) else {
        return Ok(None);
    };
    Ok(Some(Target {
        id,
        flavour: Flavour::parse(&flavour)?,
        url,
    }))
}

/// Every enabled webhook with its decrypted URL (the delivery task, per alert).
pub(super) async fn enabled_targets(state: &AppState) -> Result<Vec<Target>> {
    let rows =
        sqlx::query("SELECT id, flavour, url_encrypted FROM alert_webhooks WHERE enabled = 1")
            .fetch_all(&state.db.pool)
            .await?;
    let mut targets = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(target) = decrypt_target(&state.keys, row)? {
            targets.push(target);
        }
    }
    Ok(targets)
}

/// The final outcome of one delivery (after retries), as the row keeps it.
pub(super) enum Final {
    Delivered,
    Failed(String),
    RateLimited,
}

pub(super) async fn record_outcome(db: &Db, id: &str, outcome: &Final) -> Result<()> {
    let now = db::now();
    let query = match outcome {
        Final::Delivered => {
            "UPDATE alert_webhooks SET last_status = 'delivered', last_error = NULL, \
             last_attempt_at = $1, last_delivered_at = $1, delivered_count = delivered_count + 1 \
             WHERE id = $2"
        }
        Final::Failed(_) => {
            "UPDATE alert_webhooks SET last_status = 'failed', last_error = $3, \
             last_attempt_at = $1, failed_count = failed_count + 1 WHERE id = $2"
        }
        Final::RateLimited => {
            "UPDATE alert_webhooks SET last_status = 'rate_limited', last_error = NULL, \
             last_attempt_at = $1, rate_limited_count = rate_limited_count + 1 WHERE id = $2"
        }
    };
    let mut update = sqlx::query(query).bind(&now).bind(id);
    if let Final::Failed(error) = outcome {
        update = update.bind(error.chars().take(500).collect::<String>());
    }
    update.execute(&db.pool).await?;
    Ok(())
}

impl Outcome {
    pub(super) fn into_final(self) -> Final {
        match self {
            Outcome::Delivered => Final::Delivered,
            Outcome::Retry(error) | Outcome::Permanent(error) => Final::Failed(error),
        }
    }
}

/// `mcpbox admin reencrypt`: rewrites webhook URLs an older key wrote (`rotation::rewrite`).
pub async fn reencrypt(
    db: &Db,
    keys: &Keyring,
    report: &mut crate::secrets::rotation::Reencrypted,
) -> Result<()> {
    let column = crate::secrets::rotation::Column {
        table: "alert_webhooks",
        id: "id",
        value: "url_encrypted",
        only: "",
    };
    crate::secrets::rotation::rewrite(db, keys, column, aad, report).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_urls_are_accepted() {
        for good in [
            "https://hooks.slack.com/services/T0/B0/XYZ",
            "https://192.168.1.10:8443/hook",
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://[::1]:8080/x",
        ] {
            assert!(check_url(good).is_ok(), "{good}");
        }
        for bad in [
            "http://hooks.slack.com/services/x",
            "http://192.168.1.10/hook",
            "http://127.0.0.1.example.com/x",
            "ftp://127.0.0.1/x",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://",
            "https://example.com/x#frag",
            "not a url",
            "",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(URL_MAX));
        assert!(check_url(&long).is_err());
    }

    #[test]
    fn the_mask_keeps_host_and_last_four_characters_only() {
        let url =
            check_url("https://user:pw@hooks.slack.com/services/T000/B000/SECRETTOKEN9z").unwrap();
        let masked = mask(&url);
        assert_eq!(masked, "https://hooks.slack.com/…EN9z");
        assert!(!masked.contains("SECRET") && !masked.contains("pw"));
        let url = check_url("http://127.0.0.1:9000/h").unwrap();
        assert_eq!(mask(&url), "http://127.0.0.1:9000/…00/h");
    }
}

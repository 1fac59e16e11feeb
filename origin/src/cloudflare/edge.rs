//! The Worker's KV config document (`contract::edge::EdgeConfigDocument` under `KV_KEY`): the
//! CORS origins and extra redirect-URI patterns edited in Settings, stored here and written to
//! the Worker's KV namespace through the bulk KV API.
//!
//! The values are checked with `EdgeConfigDocument::check`, the function the Worker applies to
//! the document it reads, so a document the origin writes is never one the Worker ignores.

use axum::http::StatusCode;
use contract::edge::{EdgeConfigDocument, KV_KEY, VERSION};
use serde_json::json;

use super::Failure;
use super::client::Client;
use super::store;
use crate::activity::{Audit, NewEvent};
use crate::app::AppState;

/// Entries per list at most, and characters per entry.
pub const MAX_ENTRIES: usize = 100;
pub const MAX_ENTRY_LEN: usize = 2048;

/// What Settings edits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeSettings {
    pub cors_origins: Vec<String>,
    pub redirect_uris: Vec<String>,
}

/// When the document last reached KV, or why it did not.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
#[schema(as = edge::SyncStatus)]
pub struct SyncStatus {
    /// The document's format version (`contract::edge::VERSION`).
    pub version: u32,
    /// The last successful write; null before the first.
    pub synced_at: Option<String>,
    /// Why the last write failed; null when it succeeded.
    pub error: Option<String>,
}

pub async fn settings(state: &AppState) -> crate::Result<(EdgeSettings, SyncStatus)> {
    let db = &state.db;
    let list = |raw: Option<String>| -> Vec<String> {
        raw.and_then(|r| serde_json::from_str(&r).ok())
            .unwrap_or_default()
    };
    let settings = EdgeSettings {
        cors_origins: list(store::value(db, "edge_cors_origins").await?),
        redirect_uris: list(store::value(db, "edge_redirect_uris").await?),
    };
    let status = SyncStatus {
        version: VERSION,
        synced_at: store::value(db, "edge_synced_at").await?,
        error: store::value(db, "edge_sync_error").await?,
    };
    Ok((settings, status))
}

fn bad(message: String) -> Failure {
    Failure::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// Trims, drops empty lines, checks every entry; the first bad one is the error.
pub fn check(input: &EdgeSettings) -> Result<EdgeSettings, Failure> {
    let clean = |list: &[String], what: &str| -> Result<Vec<String>, Failure> {
        let out: Vec<String> = list
            .iter()
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty())
            .collect();
        if out.len() > MAX_ENTRIES {
            return Err(bad(format!("at most {MAX_ENTRIES} {what}")));
        }
        if let Some(long) = out.iter().find(|e| e.len() > MAX_ENTRY_LEN) {
            return Err(bad(format!(
                "{what}: {}… is longer than {MAX_ENTRY_LEN} bytes",
                // By characters: a byte index could fall inside a multi-byte character.
                long.chars().take(40).collect::<String>()
            )));
        }
        Ok(out)
    };
    let settings = EdgeSettings {
        cors_origins: clean(&input.cors_origins, "CORS origins")?,
        redirect_uris: clean(&input.redirect_uris, "redirect URIs")?,
    };
    document(&settings).check().map_err(bad)?;
    Ok(settings)
}

fn document(settings: &EdgeSettings) -> EdgeConfigDocument {
    EdgeConfigDocument {
        version: VERSION,
        cors_origins: settings.cors_origins.clone(),
        redirect_uris: settings.redirect_uris.clone(),
    }
}

/// Stores the checked settings (recorded), then writes them to KV when the Worker exists.
pub async fn update(
    state: &AppState,
    input: &EdgeSettings,
    audit: &Audit,
) -> Result<SyncStatus, Failure> {
    let settings = check(input)?;
    let db = &state.db;
    store::set_value(
        db,
        "edge_cors_origins",
        &serde_json::to_string(&settings.cors_origins).unwrap_or_default(),
    )
    .await?;
    store::set_value(
        db,
        "edge_redirect_uris",
        &serde_json::to_string(&settings.redirect_uris).unwrap_or_default(),
    )
    .await?;
    let event = NewEvent::warning("edge.update", "edge CORS origins and redirect URIs changed")
        .details(
            json!({"cors_origins": settings.cors_origins, "redirect_uris": settings.redirect_uris}),
        );
    crate::activity::record_now(state, audit, event).await?;
    // A failed sync is kept in the status (shown, retried), not a failed save.
    let _ = sync(state).await;
    Ok(settings_status(state).await?)
}

async fn settings_status(state: &AppState) -> crate::Result<SyncStatus> {
    Ok(settings(state).await?.1)
}

/// Writes the document to the Worker's KV namespace and records the outcome. Before step 4
/// there is no namespace: that is recorded as the reason.
pub async fn sync(state: &AppState) -> Result<(), Failure> {
    let db = &state.db;
    let result = write(state).await;
    match &result {
        Ok(()) => {
            store::set_value(db, "edge_synced_at", &crate::db::now()).await?;
            store::delete_values(db, &["edge_sync_error"]).await?;
        }
        Err(failure) => {
            store::set_value(db, "edge_sync_error", &failure.error.message).await?;
        }
    }
    result
}

async fn write(state: &AppState) -> Result<(), Failure> {
    let db = &state.db;
    let (settings, _) = settings(state).await?;
    let (Some(namespace), Some(token), Some(account)) = (
        store::resource(db, "kv_namespace")
            .await?
            .and_then(|r| r.id),
        store::secret(db, &state.keys, "api_token").await?,
        store::value(db, "account_id").await?,
    ) else {
        return Err(Failure::conflict(
            "not written to Cloudflare yet: the Worker's KV namespace is made in step 4 of Remote set-up",
        ));
    };
    let value = serde_json::to_string(&document(&settings)).unwrap_or_default();
    let client = Client::new(&state.remote.config.api_url, &token)?;
    let answer: serde_json::Value = client
        .put(
            &format!("/accounts/{account}/storage/kv/namespaces/{namespace}/bulk"),
            json!([{"key": KV_KEY, "value": value}]),
        )
        .await?;
    let refused = answer
        .get("unsuccessful_keys")
        .and_then(|k| k.as_array())
        .is_some_and(|k| !k.is_empty());
    if refused {
        return Err(Failure::new(
            StatusCode::BAD_GATEWAY,
            "upstream_failed",
            format!("Cloudflare did not store the key {KV_KEY}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(origins: &[&str], redirects: &[&str]) -> EdgeSettings {
        EdgeSettings {
            cors_origins: origins.iter().map(|s| s.to_string()).collect(),
            redirect_uris: redirects.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The value rules are `EdgeConfigDocument::check` (their cases are in `contract`); here,
    /// that Settings goes through it after trimming and a refusal is a 400.
    #[test]
    fn values_follow_the_shared_rules() {
        let ok = settings(
            &["https://app.example.com", "http://localhost:3000", " "],
            &[
                "https://vscode.dev/redirect",
                "https://app.example.com/oauth/*",
                " http://127.0.0.1:9000/cb ",
            ],
        );
        let checked = check(&ok).unwrap();
        assert_eq!(checked.cors_origins.len(), 2);
        assert_eq!(checked.redirect_uris[2], "http://127.0.0.1:9000/cb");
        for bad in [
            settings(&["http://plain.example.com"], &[]),
            settings(&[], &["https://app.example.com*"]),
        ] {
            let err = check(&bad).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{bad:?}");
            let shared = document(&bad).check().unwrap_err();
            assert_eq!(err.error.message, shared, "{bad:?}");
        }
    }

    #[test]
    fn lists_are_bounded() {
        let many: Vec<String> = (0..=MAX_ENTRIES)
            .map(|i| format!("https://a{i}.example.com"))
            .collect();
        let err = check(&EdgeSettings {
            cors_origins: many,
            redirect_uris: vec![],
        })
        .unwrap_err();
        assert!(err.error.message.contains("at most"));
        let long = format!("https://a.example.com/{}", "x".repeat(MAX_ENTRY_LEN));
        assert!(check(&settings(&[], &[&long])).is_err());
        // Multi-byte characters around the cut: a readable 400, not a panic.
        let wide = format!("https://a.example.com/x{}", "é".repeat(MAX_ENTRY_LEN));
        let err = check(&settings(&[], &[&wide])).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(
            err.error.message.contains("longer than"),
            "{}",
            err.error.message
        );
    }
}

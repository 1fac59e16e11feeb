//! Remote set-up through Cloudflare (issue #12): the wizard that creates the tunnel, the Workers
//! VPC service, the Worker (KV namespace, bundle, bindings), the Access for SaaS app and its
//! policy, and tears them down again.
//!
//! - `client`: the typed Cloudflare API v4 client (envelope, paging, 429 backoff, 403 → the
//!   missing permission).
//! - `store`: the wizard's rows (steps, resources with write-ahead intents, encrypted values,
//!   the remote email allowlist).
//! - `wizard`: the six steps and teardown. Each step looks for what this install created (by
//!   recorded id, then by name), creates only what is missing, records it, and can run again.
//! - `bundle`: the Worker bundle embedded in the binary (the quick start deploys it as is).
//! - `edge`: the KV config document (`contract::edge`) the Worker reads: CORS origins and extra
//!   redirect URIs from Settings.
//! - `connector`: `--run-cloudflared`, cloudflared as the origin's child.
//! - `api`: the REST routes under `/api/cloudflare/` and `/api/settings/edge`.
//!
//! One step runs at a time per replica (`Remote::lock`); a second request gets 409.

mod api;
pub mod bundle;
pub mod client;
pub mod connector;
pub mod edge;
pub mod store;
pub mod wizard;

pub(crate) use api::openapi;
pub use api::router;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::AppState;
use crate::error::Error;
use crate::gateway::tunnel::EmailAllowlist;
use client::{Account, CfError};
use store::{Step, StepError};

/// What `serve`'s flags say about Cloudflare.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--cloudflare-api-url`.
    pub api_url: String,
    /// `--cloudflare-access-url`: the Access base URL to use instead of `https://<team domain>`.
    pub access_url: Option<String>,
    /// `--tunnel-listen`: where the VPC service points by default.
    pub tunnel_listen: Option<SocketAddr>,
    /// `--remote-allowed-email`: enforced by the tunnel listener besides the wizard's list.
    pub flag_allowlist: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            api_url: client::DEFAULT_API_URL.to_owned(),
            access_url: None,
            tunnel_listen: None,
            flag_allowlist: Vec::new(),
        }
    }
}

/// The wizard's shared state in `AppState`.
#[derive(Debug, Default)]
pub struct Remote {
    pub config: Config,
    /// Held while a step or teardown runs: one at a time (a second request gets 409).
    pub lock: Arc<tokio::sync::Mutex<()>>,
    /// The address the tunnel listener is bound to (`--tunnel-listen 127.0.0.1:0` binds a port
    /// the OS picks; the VPC service must point at that one, not at port 0).
    pub tunnel_bound: std::sync::OnceLock<SocketAddr>,
    /// What the tunnel listener checks (the wizard's service token and the allowlist), read
    /// from the database at most every [`AUTH_REFRESH`] (so other replicas' changes arrive) and
    /// dropped here whenever this replica changes them.
    tunnel_auth: RwLock<Option<(Instant, Arc<TunnelAuth>)>>,
}

/// How old the cached tunnel credentials may get.
const AUTH_REFRESH: Duration = Duration::from_secs(5);

/// The wizard's part of the tunnel listener's guard.
#[derive(Debug, Default)]
pub struct TunnelAuth {
    /// The service token the wizard generated for its Worker.
    pub service_token: Option<String>,
    /// The remote allowlist from the database; `None` when it was never set.
    pub allowlist: Option<EmailAllowlist>,
}

impl Remote {
    pub fn new(config: Config) -> Remote {
        Remote {
            config,
            ..Remote::default()
        }
    }

    /// Makes the tunnel listener read the database again on its next request.
    pub fn invalidate(&self) {
        *self
            .tunnel_auth
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }
}

/// The tunnel listener's view of the wizard's credentials (cached, see [`Remote`]).
pub async fn tunnel_auth(state: &AppState) -> crate::Result<Arc<TunnelAuth>> {
    if let Some((at, auth)) = state
        .remote
        .tunnel_auth
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .as_ref()
        && at.elapsed() < AUTH_REFRESH
    {
        return Ok(auth.clone());
    }
    let service_token = store::secret(&state.db, &state.keys, "service_token").await?;
    let entries = store::allowlist(&state.db).await?;
    let auth = Arc::new(TunnelAuth {
        service_token,
        allowlist: (!entries.is_empty()).then(|| EmailAllowlist::new(&entries)),
    });
    *state
        .remote
        .tunnel_auth
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((Instant::now(), auth.clone()));
    Ok(auth)
}

/// A wizard failure as the API answers it: a status, a stable code, and the stored
/// [`StepError`] (message, Cloudflare's errors, what to do).
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub code: &'static str,
    pub step: Option<Step>,
    pub error: StepError,
    /// Set when the token reaches several accounts and none was chosen.
    pub accounts: Vec<Account>,
}

impl Failure {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            status,
            code,
            step: None,
            error: StepError {
                message: message.into(),
                cloudflare: Vec::new(),
                hint: String::new(),
            },
            accounts: Vec::new(),
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.error.hint = hint.into();
        self
    }

    pub fn conflict(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
    }

    /// Cloudflare refused or failed: its message kept, the status and hint chosen by kind.
    pub fn cloudflare(err: CfError) -> Failure {
        let (status, code, hint) = match &err {
            CfError::InvalidToken { .. } => (
                StatusCode::BAD_REQUEST,
                "cloudflare_token_invalid",
                "Create an API token at dash.cloudflare.com → My Profile → API Tokens with the \
                 permissions listed on this page, paste it in step 1 and run it again."
                    .to_owned(),
            ),
            CfError::MissingPermission { permission, .. } => (
                StatusCode::FORBIDDEN,
                "cloudflare_permission_missing",
                format!(
                    "Edit the token at dash.cloudflare.com → My Profile → API Tokens, add \
                     \"{permission}\" for this account, then run step 1 and this step again."
                ),
            ),
            CfError::RateLimited { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "cloudflare_rate_limited",
                "Wait a minute and run this step again; what was done so far is kept.".to_owned(),
            ),
            CfError::NotFound { .. } | CfError::Api { .. } => (
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
                "Run this step again; what was done so far is kept. If it keeps failing, check \
                 Cloudflare's status page and the message above."
                    .to_owned(),
            ),
            CfError::Transport(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
                "Check that this host reaches the Cloudflare API (--cloudflare-api-url) and run \
                 this step again."
                    .to_owned(),
            ),
        };
        Failure {
            status,
            code,
            step: None,
            error: StepError {
                message: err.to_string(),
                cloudflare: err.errors().to_vec(),
                hint,
            },
            accounts: Vec::new(),
        }
    }
}

impl From<CfError> for Failure {
    fn from(err: CfError) -> Self {
        Failure::cloudflare(err)
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        let status = err.status();
        let code = match status.as_u16() {
            400 => "bad_request",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            409 => "conflict",
            422 => "validation_failed",
            503 => "unavailable",
            _ => "internal_error",
        };
        Failure::new(status, code, err.public_message())
    }
}

/// A [`Failure`] on the wire: `contract::ErrorBody`'s `code` and `message`, and what the remote
/// set-up adds (absent when empty).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = cloudflare::Error)]
pub struct FailureBody {
    error: FailureDetail,
    /// Step 1, when the token reaches several accounts: choose one with `account_id`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    accounts: Vec<Account>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = cloudflare::ErrorDetail)]
struct FailureDetail {
    code: &'static str,
    message: String,
    /// The wizard step that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<Step>,
    /// Cloudflare's own errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cloudflare: Vec<client::CfMessage>,
    /// What to do about it.
    #[serde(skip_serializing_if = "String::is_empty")]
    hint: String,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = FailureBody {
            error: FailureDetail {
                code: self.code,
                message: self.error.message,
                step: self.step,
                cloudflare: self.error.cloudflare,
                hint: self.error.hint,
            },
            accounts: self.accounts,
        };
        (self.status, Json(body)).into_response()
    }
}

/// Entries of the remote allowlist at most.
pub const MAX_ALLOWLIST: usize = 200;

/// The remote allowlist as typed: addresses and `@domain` entries, trimmed, lower-cased,
/// deduplicated. At least one entry (an Access policy needs one), each well-formed.
pub fn check_allowlist(input: &[String]) -> Result<Vec<String>, Failure> {
    let bad = |message: String| Failure::new(StatusCode::BAD_REQUEST, "bad_request", message);
    let mut entries: Vec<String> = Vec::new();
    for raw in input {
        let entry = raw.trim().to_ascii_lowercase();
        if entry.is_empty() || entries.contains(&entry) {
            continue;
        }
        let valid = match entry.strip_prefix('@') {
            Some(domain) => crate::gateway::tunnel::valid_email(&format!("x@{domain}")),
            None => crate::gateway::tunnel::valid_email(&entry),
        };
        if !valid {
            return Err(bad(format!(
                "{raw:?} is neither an email address nor an @domain entry"
            )));
        }
        entries.push(entry);
    }
    if entries.is_empty() {
        return Err(bad(
            "the allowlist needs at least one email address or @domain entry".into(),
        ));
    }
    if entries.len() > MAX_ALLOWLIST {
        return Err(bad(format!("at most {MAX_ALLOWLIST} allowlist entries")));
    }
    entries.sort();
    Ok(entries)
}

/// Stores the allowlist, pushes it to the Access policy (when step 5 made one) and records the
/// change. Stored first: the tunnel listener enforces it even when Cloudflare refuses the push,
/// and the failure says so.
pub async fn set_allowlist_recorded(
    state: &AppState,
    input: &[String],
    audit: &crate::activity::Audit,
) -> Result<Vec<String>, Failure> {
    let entries = check_allowlist(input)?;
    store::set_allowlist(&state.db, &entries).await?;
    state.remote.invalidate();
    let event = crate::activity::NewEvent::warning(
        "cloudflare.allowlist",
        "remote email allowlist changed",
    )
    .details(json!({"entries": entries}));
    crate::activity::record_now(state, audit, event).await?;
    match wizard::push_allowlist(state, &entries).await {
        Ok(_) => Ok(entries),
        Err(mut failure) => {
            failure.error.message = format!(
                "saved and enforced by the tunnel listener, but not pushed to the Access policy: {}",
                failure.error.message
            );
            Err(failure)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowlist_takes_addresses_and_domains_only() {
        let entries = check_allowlist(&[
            " Alice@Example.com ".into(),
            "@Corp.example".into(),
            "alice@example.com".into(),
            "".into(),
        ])
        .unwrap();
        assert_eq!(entries, ["@corp.example", "alice@example.com"]);
        for bad in ["alice", "@", "@corp", "a@b", "*@corp.example", "a b@c.co"] {
            let err = check_allowlist(&[bad.into()]).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        assert!(check_allowlist(&[]).is_err());
        let many: Vec<String> = (0..=MAX_ALLOWLIST).map(|i| format!("u{i}@a.co")).collect();
        assert!(check_allowlist(&many).is_err());
    }
}

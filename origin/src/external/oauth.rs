//! OAuth 2.1 sign-in to an external source, with rmcp's `auth` client: RFC 9728 protected-resource
//! and RFC 8414 authorization-server discovery, RFC 7591 dynamic client registration (or a client
//! ID metadata document where the server offers it; rmcp picks), PKCE S256, RFC 8707 `resource`.
//!
//! The admin signs in from the source's page: `start` discovers, registers and returns the
//! authorization URL the browser is sent to; `finish` (the redirect URI, an origin route on the
//! admin listener) exchanges the code. A pending sign-in is held in memory, keyed by its `state`,
//! single-use (taken out before anything is checked), at most `PENDING_MAX` at once and
//! `PENDING_TTL` long, and bound to the browser that started it by a nonce cookie (only its
//! hash is kept) and to the admin account and its token epoch. It lives on the replica that
//! started it: a callback reaching another replica is refused as unknown.
//!
//! The grant (rmcp's `StoredCredentials`: access and refresh token, expiry) is stored in
//! `external_source_oauth`, AES-256-GCM under a key derived for this purpose only, the AAD naming
//! the source, so a row copied to another source does not decrypt. rmcp refreshes the token
//! before it expires and once on a 401, writing the rotated tokens back through `DbStore`. A
//! refused refresh (`invalid_grant`) marks the source `sign_in_needed`; a call then fails with a
//! message saying so, and the source shows `error` (with the alert every failing source raises).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use rmcp::transport::auth::{
    AuthError, AuthorizationManager, AuthorizationMetadata, AuthorizationMetadataSource,
    AuthorizationRequest, AuthorizationSession, CredentialRefreshGuard, CredentialStore,
    OAuthClientConfig, StoredCredentials,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Auth, Source};
use crate::activity::{self, Audit, NewEvent};
use crate::app::AppState;
use crate::auth::Role;
use crate::crypto::Keyring;
use crate::db::{self, Db};
use crate::error::{Error, Result};

/// Sign-ins started and not finished, across sources; one more is refused until one ends.
pub const PENDING_MAX: usize = 32;
/// How long an admin has at the authorization server before the sign-in expires.
pub const PENDING_TTL: Duration = Duration::from_secs(10 * 60);
/// The cookie that binds a pending sign-in to the browser that started it.
pub const NONCE_COOKIE: &str = "mcpbox_oauth";
/// How long the discovery and registration, or the code exchange, may take.
const AS_TIMEOUT: Duration = Duration::from_secs(15);
const KEY_PURPOSE: &str = "external-oauth";

/// The message every front shows for a source whose grant is gone.
pub const SIGN_IN_NEEDED: &str = "sign-in needed: the source's authorization server no longer accepts MCPbox's grant; an \
     admin signs in again from the source's page";

/// The keys tokens are sealed with: derived from the origin's keyring for this purpose only.
fn keys(state: &AppState) -> Arc<Keyring> {
    Arc::new(sealing_keys(&state.keys))
}

/// `keys` from a keyring alone (the re-encryption command has no `AppState`). The previous
/// key's subkey is the previous subkey, so a grant sealed before a rotation still opens.
fn sealing_keys(keys: &Keyring) -> Keyring {
    Keyring::new(keys.derive(KEY_PURPOSE), keys.derive_previous(KEY_PURPOSE))
}

/// `mcpbox admin reencrypt`: rewrites grants sealed under the previous key's subkey
/// (`rotation::rewrite`, under `sealing_keys`). Without it a grant would stop opening once the
/// previous key is dropped, and the source would silently need a new sign-in.
pub async fn reencrypt(
    db: &Db,
    keys: &Keyring,
    report: &mut crate::secrets::rotation::Reencrypted,
) -> Result<()> {
    let column = crate::secrets::rotation::Column {
        table: "external_source_oauth",
        id: "source_id",
        value: "credentials",
        only: "",
    };
    crate::secrets::rotation::rewrite(db, &sealing_keys(keys), column, aad, report).await
}

fn aad(source_id: &str) -> String {
    format!("external_oauth:{source_id}")
}

fn failed(err: impl std::fmt::Display) -> AuthError {
    AuthError::CredentialStoreError(err.to_string())
}

/// One refresh at a time per source in this process, so two clients of one source never both
/// spend a rotating refresh token (the second would be refused and look like a revoked grant).
static REFRESHING: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Default::default);

/// rmcp's credential store over the source's `external_source_oauth` row.
struct DbStore {
    db: Db,
    keys: Arc<Keyring>,
    source_id: String,
}

#[async_trait::async_trait]
impl CredentialStore for DbStore {
    async fn load(&self) -> std::result::Result<Option<StoredCredentials>, AuthError> {
        let stored: Option<Option<String>> = sqlx::query_scalar(
            "SELECT credentials FROM external_source_oauth WHERE source_id = $1",
        )
        .bind(&self.source_id)
        .fetch_optional(&self.db.pool)
        .await
        .map_err(failed)?;
        let Some(Some(sealed)) = stored else {
            return Ok(None);
        };
        let json = self
            .keys
            .decrypt_str(&sealed, &aad(&self.source_id))
            .map_err(failed)?;
        serde_json::from_str(&json).map(Some).map_err(failed)
    }

    async fn save(&self, credentials: StoredCredentials) -> std::result::Result<(), AuthError> {
        let json = serde_json::to_string(&credentials).map_err(failed)?;
        let sealed = self.keys.encrypt_to_string(&json, &aad(&self.source_id));
        sqlx::query(
            "UPDATE external_source_oauth SET credentials = $1, updated_at = $2 WHERE source_id = $3",
        )
        .bind(sealed)
        .bind(db::now())
        .bind(&self.source_id)
        .execute(&self.db.pool)
        .await
        .map_err(failed)?;
        Ok(())
    }

    async fn clear(&self) -> std::result::Result<(), AuthError> {
        sqlx::query("UPDATE external_source_oauth SET credentials = NULL WHERE source_id = $1")
            .bind(&self.source_id)
            .execute(&self.db.pool)
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn on_refresh_token_rejected(
        &self,
        _credentials: &StoredCredentials,
    ) -> std::result::Result<(), AuthError> {
        mark_sign_in_needed(&self.db, &self.source_id)
            .await
            .map_err(failed)
    }

    async fn acquire_refresh_guard(
        &self,
    ) -> std::result::Result<Option<CredentialRefreshGuard>, AuthError> {
        let lock = {
            let mut locks = REFRESHING.lock().map_err(failed)?;
            if locks.len() >= super::POOL_MAX {
                // Only idle locks can go: one held is also held by its refresh.
                locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            }
            locks.entry(self.source_id.clone()).or_default().clone()
        };
        Ok(Some(CredentialRefreshGuard::new(lock.lock_owned().await)))
    }
}

/// The grant is gone: the source needs an admin to sign in again.
pub(super) async fn mark_sign_in_needed(db: &Db, source_id: &str) -> Result<()> {
    sqlx::query(
        "UPDATE external_sources SET oauth_state = 'sign_in_needed' \
         WHERE id = $1 AND oauth_state = 'signed_in'",
    )
    .bind(source_id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// rmcp's authorization manager for calls to a signed-in source: the stored metadata and client,
/// credentials from the encrypted row. `Err` (a readable reason) when there is no grant.
pub(super) async fn manager(
    state: &AppState,
    source: &Source,
) -> std::result::Result<AuthorizationManager, String> {
    if source.oauth_state.as_deref() != Some("signed_in") {
        return Err(SIGN_IN_NEEDED.to_owned());
    }
    let row = sqlx::query(
        "SELECT metadata, client_id, redirect_uri FROM external_source_oauth WHERE source_id = $1",
    )
    .bind(&source.id)
    .fetch_optional(&state.db.pool)
    .await
    .map_err(|err| format!("the stored sign-in cannot be read: {err}"))?
    .ok_or_else(|| SIGN_IN_NEEDED.to_owned())?;
    let field = |name: &str| -> std::result::Result<String, String> {
        row.try_get(name)
            .map_err(|err| format!("the stored sign-in cannot be read: {err}"))
    };
    let metadata: AuthorizationMetadata = serde_json::from_str(&field("metadata")?)
        .map_err(|err| format!("the stored authorization server metadata is not valid: {err}"))?;
    let mut manager = new_manager(&source.url).await?;
    manager.set_metadata(metadata);
    manager.set_credential_store(DbStore {
        db: state.db.clone(),
        keys: keys(state),
        source_id: source.id.clone(),
    });
    manager
        .configure_client(OAuthClientConfig::new(
            field("client_id")?,
            field("redirect_uri")?,
        ))
        .map_err(|err| format!("the stored OAuth client is not usable: {err}"))?;
    Ok(manager)
}

/// Private addresses are allowed, as for the sources themselves (a homelab's authorization
/// server lives on the LAN); link-local and cloud metadata addresses stay refused by rmcp.
async fn new_manager(url: &str) -> std::result::Result<AuthorizationManager, String> {
    // rmcp's own reqwest client needs the process's rustls provider (ring), as ours does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    AuthorizationManager::new_allowing_private_addresses(url)
        .await
        .map_err(|err| format!("the OAuth client cannot be set up: {err}"))
}

/// Who may finish a sign-in: the browser holding the nonce cookie, signed in as the same admin
/// account, whose sessions were not ended since (its token epoch).
#[derive(Clone, PartialEq, Eq)]
pub struct Starter {
    pub user_id: String,
    pub token_epoch: i64,
    nonce_hash: [u8; 32],
}

impl Starter {
    /// A new starter with a fresh nonce: the nonce goes into the browser's cookie.
    pub fn new(user: &crate::users::User) -> (Starter, String) {
        let mut raw = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
        let nonce = hex::encode(raw);
        let starter = Starter {
            user_id: user.id.clone(),
            token_epoch: user.token_epoch,
            nonce_hash: Sha256::digest(nonce.as_bytes()).into(),
        };
        (starter, nonce)
    }
}

struct Pending {
    source_id: String,
    starter: Starter,
    started: Instant,
    session: AuthorizationSession,
    metadata: AuthorizationMetadata,
}

/// Sign-ins in progress (in `external::Pool`), keyed by their `state`.
#[derive(Default)]
pub struct Flows {
    /// A std mutex: held only to insert or take an entry, never across an await.
    pending: Mutex<HashMap<String, Pending>>,
}

impl Flows {
    fn busy() -> Error {
        Error::Conflict(format!(
            "{PENDING_MAX} sign-ins are in progress already; finish one or try again in {} \
             minutes",
            PENDING_TTL.as_secs() / 60
        ))
    }

    /// Whether another sign-in may start (checked before any request, and again on insert).
    fn has_room(&self) -> Result<()> {
        let mut pending = self
            .pending
            .lock()
            .map_err(|_| Error::Internal(anyhow::anyhow!("sign-in table poisoned")))?;
        pending.retain(|_, flow| flow.started.elapsed() < PENDING_TTL);
        if pending.len() >= PENDING_MAX {
            return Err(Flows::busy());
        }
        Ok(())
    }

    fn insert(&self, state: String, flow: Pending) -> Result<()> {
        let mut pending = self
            .pending
            .lock()
            .map_err(|_| Error::Internal(anyhow::anyhow!("sign-in table poisoned")))?;
        pending.retain(|_, flow| flow.started.elapsed() < PENDING_TTL);
        if pending.len() >= PENDING_MAX {
            return Err(Flows::busy());
        }
        pending.insert(state, flow);
        Ok(())
    }

    /// Takes a pending sign-in out (it is good once), if it exists and has not expired.
    fn take(&self, state: &str) -> Option<Pending> {
        let mut pending = self.pending.lock().ok()?;
        pending.retain(|_, flow| flow.started.elapsed() < PENDING_TTL);
        pending.remove(state)
    }

    /// Sign-ins pending now (tests and bounds).
    pub fn len(&self) -> usize {
        self.pending.lock().map_or(0, |pending| pending.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The redirect URI of a source's sign-in, on the origin that served `base` (scheme and host
/// of the admin's own request to it).
pub fn redirect_uri(base: &str, source_id: &str) -> String {
    format!(
        "{}/ui/sources/{source_id}/oauth/callback",
        base.trim_end_matches('/')
    )
}

/// Starts a sign-in: discovers the source's authorization server, registers MCPbox with it
/// and returns the URL to send the admin's browser to.
pub async fn start(
    state: &AppState,
    source_id: &str,
    starter: Starter,
    redirect_uri: &str,
) -> Result<String> {
    let source = super::get(&state.db, source_id).await?;
    source.require_approved()?;
    if source.auth != Auth::OAuth {
        return Err(Error::Conflict(
            "the source does not authenticate with OAuth: choose auth_type oauth first".into(),
        ));
    }
    state.external.flows.has_room()?;
    let prepare = async {
        let mut manager = new_manager(&source.url).await?;
        let resolution = manager
            .resolve_metadata()
            .await
            .map_err(|err| format!("OAuth discovery failed: {err}"))?;
        if resolution.source == AuthorizationMetadataSource::LegacyEndpointFallback {
            return Err(
                "the source publishes no OAuth metadata (RFC 9728 or RFC 8414): it does not \
                 sign in with OAuth"
                    .to_owned(),
            );
        }
        let metadata = resolution.metadata;
        manager.set_metadata(metadata.clone());
        let request = AuthorizationRequest::new(redirect_uri).with_client_name("MCPbox");
        let session = AuthorizationSession::new(manager, request)
            .await
            .map_err(|(_, err)| format!("the authorization server refused MCPbox: {err}"))?;
        Ok::<_, String>((session, metadata))
    };
    let (session, metadata) = match tokio::time::timeout(AS_TIMEOUT, prepare).await {
        Ok(Ok(found)) => found,
        Ok(Err(message)) => {
            return Err(Error::BadGateway(format!(
                "the sign-in to {:?} cannot start: {message}",
                source.name
            )));
        }
        Err(_) => {
            return Err(Error::BadGateway(format!(
                "the sign-in to {:?} cannot start: no answer within {} s",
                source.name,
                AS_TIMEOUT.as_secs()
            )));
        }
    };
    let url = session.get_authorization_url().to_owned();
    let flow_state = reqwest::Url::parse(&url)
        .ok()
        .and_then(|url| {
            url.query_pairs()
                .find(|(key, _)| key == "state")
                .map(|(_, value)| value.into_owned())
        })
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("rmcp's authorization URL has no state")))?;
    state.external.flows.insert(
        flow_state,
        Pending {
            source_id: source.id.clone(),
            starter,
            started: Instant::now(),
            session,
            metadata,
        },
    )?;
    Ok(url)
}

/// What the authorization server sent back to the redirect URI.
pub struct Callback<'a> {
    pub state: &'a str,
    pub code: Option<&'a str>,
    /// RFC 9207 `iss`, checked by rmcp against the discovered issuer.
    pub iss: Option<&'a str>,
    /// An error the authorization server reported instead of a code (e.g. `access_denied`).
    pub error: Option<&'a str>,
    /// The nonce cookie of the browser.
    pub nonce: Option<&'a str>,
}

/// Finishes a sign-in at the redirect URI of `source_id`: the pending sign-in is taken out first
/// (so a `state` is good once, whatever happens next), then it must be this source's, not
/// expired, from this browser and its admin; then the code is exchanged (rmcp sends the PKCE
/// verifier) and the grant stored, encrypted.
pub async fn finish(state: &AppState, source_id: &str, callback: Callback<'_>) -> Result<Source> {
    let unknown = || {
        Error::Validation(
            "this sign-in is unknown, used already or expired: start it again from the source's \
             page"
                .into(),
        )
    };
    let flow = state
        .external
        .flows
        .take(callback.state)
        .ok_or_else(unknown)?;
    if flow.started.elapsed() >= PENDING_TTL {
        return Err(unknown());
    }
    if flow.source_id != source_id {
        return Err(Error::Validation(
            "this sign-in was started for another source; it is refused".into(),
        ));
    }
    let nonce_hash: Option<[u8; 32]> = callback
        .nonce
        .map(|nonce| Sha256::digest(nonce.as_bytes()).into());
    if nonce_hash.is_none_or(|hash| {
        !bool::from(subtle::ConstantTimeEq::ct_eq(
            &hash[..],
            &flow.starter.nonce_hash[..],
        ))
    }) {
        return Err(Error::Forbidden(
            "this sign-in was started in another browser session; start it again here",
        ));
    }
    let user = crate::users::get(&state.db.pool, &flow.starter.user_id).await?;
    if !user.is_active
        || user.token_epoch != flow.starter.token_epoch
        || !user.role.includes(Role::Admin)
    {
        return Err(Error::Forbidden(
            "the admin session that started this sign-in has ended",
        ));
    }
    if let Some(error) = callback.error {
        return Err(Error::BadGateway(format!(
            "the authorization server did not grant access: {}",
            error.chars().take(200).collect::<String>()
        )));
    }
    let code = callback.code.ok_or_else(|| {
        Error::Validation("the authorization server sent neither a code nor an error".into())
    })?;
    let exchange = async {
        let token = flow
            .session
            .handle_callback_with_issuer(code, callback.state, callback.iss)
            .await?;
        let (client_id, _) = flow.session.get_credentials().await?;
        Ok::<_, AuthError>((token, client_id))
    };
    let (token, client_id) = match tokio::time::timeout(AS_TIMEOUT, exchange).await {
        Ok(Ok(found)) => found,
        Ok(Err(err)) => {
            return Err(Error::BadGateway(format!(
                "the authorization server refused the sign-in: {err}"
            )));
        }
        Err(_) => {
            return Err(Error::BadGateway(format!(
                "the authorization server did not answer within {} s",
                AS_TIMEOUT.as_secs()
            )));
        }
    };
    // The granted scopes are left unknown: a refresh then asks for the original grant.
    let credentials = StoredCredentials::new(
        client_id.clone(),
        Some(token),
        Vec::new(),
        Some(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs()),
        ),
    )
    .with_issuer(flow.metadata.issuer.clone());
    let sealed = keys(state).encrypt_to_string(
        &serde_json::to_string(&credentials)
            .map_err(|err| Error::Internal(anyhow::anyhow!("credentials to JSON: {err}")))?,
        &aad(source_id),
    );
    let metadata = serde_json::to_string(&flow.metadata)
        .map_err(|err| Error::Internal(anyhow::anyhow!("metadata to JSON: {err}")))?;
    let now = db::now();
    let mut tx = state.db.pool.begin().await?;
    // The source may have been deleted or switched away from OAuth meanwhile: nothing is stored.
    let updated = sqlx::query(
        "UPDATE external_sources SET oauth_state = 'signed_in', status = 'active', last_error = NULL, \
         updated_at = $1 WHERE id = $2 AND oauth_state IS NOT NULL AND status <> 'pending_approval'",
    )
    .bind(&now)
    .bind(source_id)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(Error::Conflict(
            "the source was deleted, or no longer uses OAuth, during the sign-in".into(),
        ));
    }
    sqlx::query(
        "INSERT INTO external_source_oauth (source_id, metadata, client_id, redirect_uri, credentials, \
         signed_in_by, signed_in_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         ON CONFLICT (source_id) DO UPDATE SET metadata = $2, client_id = $3, redirect_uri = $4, \
         credentials = $5, signed_in_by = $6, signed_in_at = $7, updated_at = $7",
    )
    .bind(source_id)
    .bind(&metadata)
    .bind(&client_id)
    .bind(&flow.session.redirect_uri)
    .bind(&sealed)
    .bind(&user.username)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    let audit = Audit {
        actor: user.username.clone(),
        request_id: None,
    };
    let source = super::get_in(&mut *tx, source_id).await?;
    let event = activity::record(
        &mut *tx,
        &audit,
        NewEvent::info(
            "external.sign_in",
            format!("signed in to external source {} with OAuth", source.name),
        )
        .server(&source.server_id)
        .details(json!({"source_id": source.id, "issuer": flow.metadata.issuer})),
    )
    .await?;
    tx.commit().await?;
    state.activity.publish(event);
    // The next call connects with the new grant.
    state.external.forget(source_id);
    Ok(source)
}

/// Forgets the grant (the tokens are deleted; nothing is sent to the authorization server).
pub async fn sign_out_recorded(state: &AppState, source_id: &str, audit: &Audit) -> Result<Source> {
    let source = super::get(&state.db, source_id).await?;
    if source.auth != Auth::OAuth {
        return Err(Error::Conflict(
            "the source does not authenticate with OAuth".into(),
        ));
    }
    let mut tx = state.db.pool.begin().await?;
    sqlx::query("DELETE FROM external_source_oauth WHERE source_id = $1")
        .bind(source_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE external_sources SET oauth_state = 'signed_out', updated_at = $1 WHERE id = $2",
    )
    .bind(db::now())
    .bind(source_id)
    .execute(&mut *tx)
    .await?;
    let event = activity::record(
        &mut *tx,
        audit,
        NewEvent::warning(
            "external.sign_out",
            format!("signed out of external source {}", source.name),
        )
        .server(&source.server_id)
        .details(json!({"source_id": source.id})),
    )
    .await?;
    tx.commit().await?;
    state.activity.publish(event);
    state.external.forget(source_id);
    super::get(&state.db, source_id).await
}

/// An rmcp failure that means the source refused our token even after a refresh.
pub(super) fn is_auth_refusal(message: &str) -> bool {
    message.contains("Auth required") || message.contains("authorization required")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pending(source_id: &str, age: Duration) -> Pending {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let manager = AuthorizationManager::new("http://127.0.0.1:9/mcp")
            .await
            .expect("a manager is made without a request");
        Pending {
            source_id: source_id.into(),
            starter: Starter {
                user_id: "u".into(),
                token_epoch: 0,
                nonce_hash: [0; 32],
            },
            started: Instant::now()
                .checked_sub(age)
                .expect("the test's clock is past the age"),
            session: AuthorizationSession::for_scope_upgrade(manager, "https://as/".into(), "r"),
            metadata: AuthorizationMetadata::default(),
        }
    }

    #[tokio::test]
    async fn a_pending_sign_in_is_good_once_and_expires() {
        let flows = Flows::default();
        flows
            .insert("fresh".into(), pending("s", Duration::ZERO).await)
            .expect("room");
        flows
            .insert("old".into(), pending("s", PENDING_TTL).await)
            .expect("room");
        assert!(flows.take("old").is_none(), "an expired state is refused");
        assert!(flows.take("fresh").is_some());
        assert!(flows.take("fresh").is_none(), "a state is good once");
        assert!(flows.take("never-issued").is_none());
    }

    #[tokio::test]
    async fn pending_sign_ins_are_capped_and_expired_ones_make_room() {
        let flows = Flows::default();
        for i in 0..PENDING_MAX {
            flows
                .insert(format!("s{i}"), pending("s", Duration::ZERO).await)
                .expect("room");
        }
        assert!(flows.has_room().is_err());
        assert!(matches!(
            flows.insert("one-more".into(), pending("s", Duration::ZERO).await),
            Err(Error::Conflict(_))
        ));
        assert_eq!(flows.len(), PENDING_MAX);
        // Expired ones do not count.
        let aged = Flows::default();
        for i in 0..PENDING_MAX {
            aged.insert(format!("s{i}"), pending("s", PENDING_TTL).await)
                .expect("room");
        }
        assert!(aged.has_room().is_ok());
        assert!(aged.is_empty());
    }
}

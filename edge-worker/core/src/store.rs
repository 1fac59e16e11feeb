//! The records the core keeps in KV, and their keys.
//!
//! Tokens, codes and client secrets appear only as SHA-256 hashes (in keys and fields). Every
//! record carries its own expiry, checked on read; the KV TTL only lets the store drop it.
//! Per-grant properties (the verified email) are sealed with AES-GCM bound to the grant's key.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Error, Kv};

/// KV refuses TTLs below a minute.
const MIN_TTL: u64 = 60;

pub fn client_key(client_id: &str) -> String {
    format!("client:{client_id}")
}
pub fn cimd_key(url: &str) -> String {
    format!("cimd:{}", crate::crypto::hash(url))
}
pub fn rate_key(ip: &str) -> String {
    format!("ratelimit:register:{ip}")
}
pub fn state_key(state: &str) -> String {
    format!("oidc_state:{}", crate::crypto::hash(state))
}
pub fn grant_key(grant_id: &str) -> String {
    format!("grant:{grant_id}")
}
pub fn code_key(code: &str) -> String {
    format!("code:{}", crate::crypto::hash(code))
}
pub fn access_key(token: &str) -> String {
    format!("access:{}", crate::crypto::hash(token))
}
pub fn refresh_key(token: &str) -> String {
    format!("refresh:{}", crate::crypto::hash(token))
}

/// A dynamically registered client (RFC 7591).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientRecord {
    pub redirect_uris: Vec<String>,
    /// `none`, `client_secret_post` or `client_secret_basic`.
    pub auth_method: String,
    pub secret_hash: Option<String>,
    pub name: Option<String>,
    pub created_at: u64,
    pub expires_at: u64,
}

/// A fetched client ID metadata document, or the memory of a failed fetch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CimdRecord {
    /// `Err(reason)` caches a failure briefly so one bad URL cannot make us fetch on every hit.
    pub result: Result<CimdClient, String>,
    pub expires_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CimdClient {
    pub redirect_uris: Vec<String>,
    pub name: Option<String>,
}

/// Registrations from one address in the current hour.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RateRecord {
    pub window_start: u64,
    pub count: u32,
}

/// What a client asked for at `/authorize`, carried through consent and the upstream login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub resource: String,
    pub scope: Option<String>,
}

/// An upstream login in progress, under the hash of its `state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateRecord {
    pub request: AuthRequest,
    /// Sealed `{nonce, verifier}`: the PKCE verifier is as good as a password for the code.
    pub secrets: String,
    /// Hash of the login cookie set in the browser that consented (RFC 6749 §10.12): only that
    /// browser may finish this login. Empty in records written before the binding existed,
    /// which therefore match no cookie.
    #[serde(default)]
    pub browser: String,
    pub expires_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateSecrets {
    pub nonce: String,
    pub verifier: String,
}

/// One user's authorization of one client. Deleting it revokes every token issued under it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantRecord {
    pub client_id: String,
    pub resource: String,
    pub scope: Option<String>,
    /// Sealed [`GrantProps`], bound to this grant's key.
    pub props: String,
    pub created_at: u64,
    pub expires_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantProps {
    /// From a verified id_token only.
    pub email: String,
}

/// An authorization code. Kept (marked used) after redemption so a second use is recognised
/// as code reuse even where KV has not yet seen the update.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeRecord {
    pub grant_id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub resource: String,
    pub expires_at: u64,
    pub used: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessRecord {
    pub grant_id: String,
    pub client_id: String,
    pub resource: String,
    pub expires_at: u64,
}

/// A refresh token. Each token is its own record, so two concurrent refreshes never overwrite
/// each other's new token (KV has no transactions).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub grant_id: String,
    pub client_id: String,
    pub expires_at: u64,
    /// When it was first exchanged. It keeps working for the grace period after that; a use
    /// later than that is a replay.
    pub spent_at: Option<u64>,
}

/// Read and decode a JSON record; a record that no longer decodes is treated as corrupt.
pub async fn get<T: DeserializeOwned>(kv: &impl Kv, key: &str) -> Result<Option<T>, Error> {
    match kv.get(key).await? {
        None => Ok(None),
        Some(raw) => serde_json::from_str(&raw)
            .map(Some)
            .map_err(|e| Error::Stored(format!("{}: {e}", key_kind(key)))),
    }
}

/// Store a JSON record that may be dropped `ttl` seconds from now (at least a minute).
pub async fn put<T: Serialize>(kv: &impl Kv, key: &str, value: &T, ttl: u64) -> Result<(), Error> {
    let raw = serde_json::to_string(value).map_err(|e| Error::Stored(e.to_string()))?;
    kv.put(key, &raw, Some(ttl.max(MIN_TTL))).await
}

/// The record kind for messages: the key without its (possibly secret-derived) suffix.
fn key_kind(key: &str) -> &str {
    key.split(':').next().unwrap_or(key)
}

//! External MCP sources: other MCP servers whose tools a server offers as passthrough tools.
//!
//! A source (URL, auth from one of the server's secrets) is added, its tools are discovered with
//! rmcp's client and cached, and chosen ones are imported as passthrough tools: ordinary tools of
//! kind `Passthrough` whose version content is a `Binding`, so approval, versions, visibility and
//! `tools::runnable` apply unchanged. `forward` (called by `execution::run` only, after the
//! call-time check) sends an approved passthrough call through a pooled client per source.
//!
//! Requests to sources: only `http`/`https` URLs without credentials, no redirects followed, and
//! none at all to a source an LLM added over MCP until an admin approved it (`pending_approval`).
//! Private addresses are allowed on purpose (a homelab's MCP servers live on the LAN): the
//! person approving the source is the guard, as for tools' network access.
//!
//! Calls are never resent: a pooled client whose transport has closed is replaced before a call,
//! and a call that failed in transit drops the client so the next call reconnects; rmcp itself
//! re-initialises an expired 2025-11-25 session (the server answered 404, so nothing ran).

mod api;
pub mod oauth;
pub mod sse;

pub(crate) use api::openapi;

pub use api::{DiscoveredBody, ImportBody, SourceBody, router};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rmcp::RoleClient;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    Implementation, JsonObject, ProtocolVersion,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;
use tracing::Instrument as _;

use crate::activity::{self, Audit, NewEvent};
use crate::app::AppState;
use crate::db::{self, Db};
use crate::error::{Error, OnConflict, Result};
use crate::names::Name;
use crate::tools::{self, Approved};

pub const URL_MAX: usize = 2048;
/// Tools kept from one discovery; a source offering more is cut (and says so).
pub const DISCOVERED_MAX: usize = 500;
/// A discovered tool's input schema larger than this (as JSON) is not importable.
pub const SCHEMA_MAX_BYTES: usize = 64 * 1024;
/// How long connecting plus discovery or a health check may take.
const CONTACT_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pooled clients (one per source); beyond this the pool is emptied and refilled on demand.
pub const POOL_MAX: usize = 256;

/// Headers a custom auth header may not replace: the transport's own and hop-by-hop ones.
const RESERVED_HEADERS: [&str; 12] = [
    "host",
    "content-length",
    "content-type",
    "accept",
    "connection",
    "transfer-encoding",
    "upgrade",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "last-event-id",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    /// `Authorization: Bearer <secret>`.
    Bearer {
        secret: String,
    },
    /// `<header>: <secret>`.
    Header {
        header: String,
        secret: String,
    },
    /// OAuth 2.1: an admin signs in from the source's page; the grant is stored encrypted
    /// (`oauth`).
    OAuth,
}

impl Auth {
    fn kind(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Bearer { .. } => "bearer",
            Auth::Header { .. } => "header",
            Auth::OAuth => "oauth",
        }
    }

    /// The stored `auth_type`: an OAuth source is `none` there and says so by `oauth_state`
    /// (migration 0017).
    fn stored_kind(&self) -> &'static str {
        match self {
            Auth::OAuth => "none",
            other => other.kind(),
        }
    }

    fn secret(&self) -> Option<&str> {
        match self {
            Auth::None | Auth::OAuth => None,
            Auth::Bearer { secret } | Auth::Header { secret, .. } => Some(secret),
        }
    }

    fn header(&self) -> Option<&str> {
        match self {
            Auth::Header { header, .. } => Some(header),
            _ => None,
        }
    }

    /// From the API's three fields: the secret is named, never given.
    pub fn parse(kind: Option<&str>, secret: Option<&str>, header: Option<&str>) -> Result<Auth> {
        let secret_name = || -> Result<String> {
            let name = secret.ok_or_else(|| {
                Error::Validation(
                    "auth_secret_name is required for bearer and header auth: the name of one \
                     of the server's secrets"
                        .into(),
                )
            })?;
            crate::secrets::check_key(name)?;
            Ok(name.to_owned())
        };
        let kind = kind.unwrap_or("none");
        if matches!(kind, "none" | "oauth") && (secret.is_some() || header.is_some()) {
            return Err(Error::Validation(
                "auth_secret_name and auth_header_name need auth_type bearer or header".into(),
            ));
        }
        match kind {
            "none" => Ok(Auth::None),
            "oauth" => Ok(Auth::OAuth),
            "bearer" => {
                if header.is_some() {
                    return Err(Error::Validation(
                        "auth_header_name is only for auth_type header".into(),
                    ));
                }
                Ok(Auth::Bearer {
                    secret: secret_name()?,
                })
            }
            "header" => {
                let header = header.ok_or_else(|| {
                    Error::Validation("auth_header_name is required for auth_type header".into())
                })?;
                let lower = header.to_ascii_lowercase();
                if reqwest::header::HeaderName::from_bytes(lower.as_bytes()).is_err()
                    || RESERVED_HEADERS.contains(&lower.as_str())
                    || lower.len() > 100
                {
                    return Err(Error::Validation(format!(
                        "auth_header_name {header:?} is not a header MCPbox can send (a valid \
                         name, not one of {})",
                        RESERVED_HEADERS.join(", ")
                    )));
                }
                Ok(Auth::Header {
                    header: lower,
                    secret: secret_name()?,
                })
            }
            other => Err(Error::Validation(format!(
                "unknown auth_type {other:?}: use none, bearer, header or oauth"
            ))),
        }
    }
}

/// An accepted source URL: `http` or `https`, a host, no credentials, no fragment.
pub fn check_url(text: &str) -> Result<String> {
    let text = text.trim();
    if text.len() > URL_MAX {
        return Err(Error::Validation(format!(
            "the URL is longer than {URL_MAX} characters"
        )));
    }
    let url = reqwest::Url::parse(text)
        .map_err(|err| Error::Validation(format!("the URL is not valid: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::Validation(format!(
            "the URL scheme {:?} is refused: external MCP sources are http:// or https:// URLs",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::Validation("the URL has no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Validation(
            "the URL may not carry credentials: put them in a server secret and choose bearer or \
             header auth"
                .into(),
        ));
    }
    if url.fragment().is_some() {
        return Err(Error::Validation("the URL may not have a #fragment".into()));
    }
    Ok(url.to_string())
}

#[derive(Debug, Clone)]
pub struct Source {
    pub id: String,
    pub server_id: String,
    pub name: String,
    pub url: String,
    pub auth: Auth,
    /// `pending_approval`, `active` or `error`.
    pub status: String,
    pub approved_by: Option<String>,
    pub approved_at: Option<String>,
    pub last_checked_at: Option<String>,
    pub last_error: Option<String>,
    pub protocol_version: Option<String>,
    /// OAuth sources: `signed_out`, `signed_in` or `sign_in_needed`; `None` for the others.
    pub oauth_state: Option<String>,
    /// The legacy HTTP+SSE transport (`sse`) instead of Streamable HTTP (fixed at creation).
    pub legacy_sse: bool,
    /// JSON array of `Discovered`.
    pub discovered_tools: String,
    pub tool_count: i64,
    pub last_discovered_at: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str = "id, server_id, name, url, auth_type, auth_secret_name, auth_header_name, \
     status, approved_by, approved_at, last_checked_at, last_error, protocol_version, \
     discovered_tools, tool_count, last_discovered_at, created_by, created_at, updated_at, oauth_state, legacy_sse";

impl Source {
    fn from_row(row: &AnyRow) -> Result<Source> {
        let kind: String = row.try_get("auth_type")?;
        let secret: Option<String> = row.try_get("auth_secret_name")?;
        let header: Option<String> = row.try_get("auth_header_name")?;
        let oauth_state: Option<String> = row.try_get("oauth_state")?;
        let auth = match (kind.as_str(), secret, header) {
            ("none", _, _) if oauth_state.is_some() => Auth::OAuth,
            ("none", _, _) => Auth::None,
            ("bearer", Some(secret), _) => Auth::Bearer { secret },
            ("header", Some(secret), Some(header)) => Auth::Header { header, secret },
            _ => {
                return Err(Error::Internal(anyhow::anyhow!(
                    "external source with inconsistent auth columns"
                )));
            }
        };
        Ok(Source {
            id: row.try_get("id")?,
            server_id: row.try_get("server_id")?,
            name: row.try_get("name")?,
            url: row.try_get("url")?,
            auth,
            status: row.try_get("status")?,
            approved_by: row.try_get("approved_by")?,
            approved_at: row.try_get("approved_at")?,
            last_checked_at: row.try_get("last_checked_at")?,
            last_error: row.try_get("last_error")?,
            protocol_version: row.try_get("protocol_version")?,
            oauth_state,
            legacy_sse: row.try_get::<i64, _>("legacy_sse")? != 0,
            discovered_tools: row.try_get("discovered_tools")?,
            tool_count: row.try_get("tool_count")?,
            last_discovered_at: row.try_get("last_discovered_at")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    fn require_approved(&self) -> Result<()> {
        if self.status == "pending_approval" {
            return Err(Error::Conflict(format!(
                "the external source {:?} waits for an admin's approval: MCPbox sends it no \
                 request until then",
                self.name
            )));
        }
        Ok(())
    }

    fn discovered(&self) -> Vec<Discovered> {
        serde_json::from_str::<Vec<Value>>(&self.discovered_tools)
            .unwrap_or_default()
            .iter()
            .filter_map(Discovered::from_json)
            .collect()
    }
}

/// A tool found by discovery, as cached.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

impl Discovered {
    fn to_json(&self) -> Value {
        json!({"name": self.name, "description": self.description, "input_schema": self.input_schema})
    }

    fn from_json(value: &Value) -> Option<Discovered> {
        Some(Discovered {
            name: value["name"].as_str()?.to_owned(),
            description: value["description"].as_str().unwrap_or_default().to_owned(),
            input_schema: value["input_schema"].clone(),
        })
    }
}

/// What a passthrough tool's version holds instead of code: which source and which remote tool.
/// Stored as JSON in the version and hashed with it, so changing it needs a new approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub source_id: String,
    pub remote_tool: String,
}

impl Binding {
    fn to_content(&self) -> String {
        json!({"source_id": self.source_id, "remote_tool": self.remote_tool}).to_string()
    }

    fn parse(content: &str) -> Result<Binding> {
        let value: Value = serde_json::from_str(content).map_err(|err| {
            Error::Internal(anyhow::anyhow!("passthrough binding is not JSON: {err}"))
        })?;
        match (value["source_id"].as_str(), value["remote_tool"].as_str()) {
            (Some(source_id), Some(remote_tool)) => Ok(Binding {
                source_id: source_id.to_owned(),
                remote_tool: remote_tool.to_owned(),
            }),
            _ => Err(Error::Internal(anyhow::anyhow!(
                "passthrough binding without source_id and remote_tool"
            ))),
        }
    }
}

pub struct NewSource<'a> {
    pub server_id: &'a str,
    pub name: &'a str,
    pub url: &'a str,
    pub auth: Auth,
    pub transport_type: Option<&'a str>,
    /// An admin's addition is approved at once; an LLM's waits (`pending_approval`).
    pub approved_by: Option<&'a str>,
}

/// The longest source name: it prefixes its tools' names (`{source}_{tool}`, cut to
/// `IMPORTED_NAME_MAX`), so it stays within that.
const SOURCE_NAME_MAX: usize = IMPORTED_NAME_MAX;

/// A source's name: a tool-style name of at most `SOURCE_NAME_MAX` characters.
fn source_name(text: &str) -> Result<Name> {
    let name = Name::tool(text)?;
    if text.len() > SOURCE_NAME_MAX {
        return Err(Error::Validation(format!(
            "invalid source name {text:?}: at most {SOURCE_NAME_MAX} characters"
        )));
    }
    Ok(name)
}

/// Adds a source, with its activity row. No request is sent to it here.
pub async fn add_recorded(state: &AppState, new: NewSource<'_>, audit: &Audit) -> Result<Source> {
    let name = source_name(new.name)?;
    let url = check_url(new.url)?;
    let legacy_sse = match new.transport_type.unwrap_or("streamable_http") {
        "streamable_http" => false,
        "sse" if new.auth == Auth::OAuth => {
            return Err(Error::Validation(
                "OAuth sign-in is for Streamable HTTP sources; the legacy SSE transport takes \
                 none, bearer or header auth"
                    .into(),
            ));
        }
        "sse" => true,
        other => {
            return Err(Error::Validation(format!(
                "unknown transport_type {other:?}: use streamable_http or sse"
            )));
        }
    };
    crate::servers::get(&state.db, new.server_id).await?;
    let now = db::now();
    let status = if new.approved_by.is_some() {
        "active"
    } else {
        "pending_approval"
    };
    let row = sqlx::query(&format!(
        "INSERT INTO external_sources (id, server_id, name, url, auth_type, auth_secret_name, \
         auth_header_name, transport_type, status, approved_by, approved_at, created_by, created_at, updated_at, oauth_state, legacy_sse) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'streamable_http', $8, $9, $10, $11, $12, $12, $13, $14) RETURNING {COLUMNS}"
    ))
    .bind(db::new_id())
    .bind(new.server_id)
    .bind(name.as_str())
    .bind(&url)
    .bind(new.auth.stored_kind())
    .bind(new.auth.secret())
    .bind(new.auth.header())
    .bind(status)
    .bind(new.approved_by)
    .bind(new.approved_by.map(|_| now.clone()))
    .bind(&audit.actor)
    .bind(&now)
    .bind((new.auth == Auth::OAuth).then_some("signed_out"))
    .bind(i64::from(legacy_sse))
    .fetch_one(&state.db.pool)
    .await
    .on_conflict(|| {
        format!(
            "the server already has an external source named {:?}",
            name.as_str()
        )
    })?;
    let source = Source::from_row(&row)?;
    let event = NewEvent::info(
        "external.add",
        format!(
            "external source {} added ({}, {})",
            source.name, source.url, source.status
        ),
    )
    .server(&source.server_id)
    .details(json!({"source_id": source.id, "auth_type": source.auth.kind()}));
    activity::record_now(state, audit, event).await?;
    Ok(source)
}

pub async fn get(db: &Db, id: &str) -> Result<Source> {
    get_in(&db.pool, id).await
}

async fn get_in<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    id: &str,
) -> Result<Source> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM external_sources WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await?
    .ok_or_else(|| Error::NotFound("no external source with that id".into()))?;
    Source::from_row(&row)
}

/// Sources waiting for an admin's approval (added over MCP), oldest first, across servers.
pub async fn pending(db: &Db) -> Result<Vec<Source>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM external_sources WHERE status = 'pending_approval' \
         ORDER BY created_at, id LIMIT 200"
    ))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(Source::from_row).collect()
}

pub async fn list(db: &Db, server_id: &str) -> Result<Vec<Source>> {
    crate::servers::get(db, server_id).await?;
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM external_sources WHERE server_id = $1 ORDER BY name"
    ))
    .bind(server_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(Source::from_row).collect()
}

/// An admin lets MCPbox contact a source an LLM added.
pub async fn approve_recorded(state: &AppState, id: &str, audit: &Audit) -> Result<Source> {
    let now = db::now();
    let row = sqlx::query(&format!(
        "UPDATE external_sources SET status = 'active', approved_by = $1, approved_at = $2, updated_at = $2 \
         WHERE id = $3 AND status = 'pending_approval' RETURNING {COLUMNS}"
    ))
    .bind(&audit.actor)
    .bind(&now)
    .bind(id)
    .fetch_optional(&state.db.pool)
    .await?;
    let Some(row) = row else {
        get(&state.db, id).await?;
        return Err(Error::Conflict(
            "the external source is already approved".into(),
        ));
    };
    let source = Source::from_row(&row)?;
    let event = NewEvent::info(
        "external.approve",
        format!("external source {} ({}) approved", source.name, source.url),
    )
    .server(&source.server_id)
    .details(json!({"source_id": source.id}));
    activity::record_now(state, audit, event).await?;
    Ok(source)
}

/// An admin's change of a source (REST only). A new URL or credential is approved by the admin
/// making it; the pooled client notices the change by its fingerprint. Imported tools keep their
/// names and bindings.
pub struct SourceChanges<'a> {
    pub name: Option<&'a str>,
    pub url: Option<&'a str>,
    /// `Some`: replaces the whole auth (type, secret name, header).
    pub auth: Option<Auth>,
}

pub async fn update_recorded(
    state: &AppState,
    id: &str,
    changes: SourceChanges<'_>,
    audit: &Audit,
) -> Result<Source> {
    let source = get(&state.db, id).await?;
    let name = match changes.name {
        Some(name) => source_name(name)?.as_str().to_owned(),
        None => source.name.clone(),
    };
    let url = match changes.url {
        Some(url) => check_url(url)?,
        None => source.url.clone(),
    };
    let auth = changes.auth.unwrap_or_else(|| source.auth.clone());
    if source.legacy_sse && auth == Auth::OAuth {
        return Err(Error::Validation(
            "OAuth sign-in is for Streamable HTTP sources, not legacy SSE ones".into(),
        ));
    }
    // A grant is for one resource: a new URL, or leaving OAuth, forgets it.
    let keep_grant = auth == Auth::OAuth && source.auth == Auth::OAuth && url == source.url;
    let oauth_state = match (&auth, keep_grant) {
        (Auth::OAuth, true) => source.oauth_state.clone(),
        (Auth::OAuth, false) => Some("signed_out".to_owned()),
        _ => None,
    };
    let now = db::now();
    let mut tx = state.db.pool.begin().await?;
    if !keep_grant {
        sqlx::query("DELETE FROM external_source_oauth WHERE source_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    let row = sqlx::query(&format!(
        "UPDATE external_sources SET name = $1, url = $2, auth_type = $3, auth_secret_name = $4, \
         auth_header_name = $5, status = CASE WHEN status = 'pending_approval' THEN 'active' ELSE status END, \
         approved_by = COALESCE(approved_by, $6), approved_at = COALESCE(approved_at, $7), updated_at = $7, \
         oauth_state = $8 WHERE id = $9 RETURNING {COLUMNS}"
    ))
    .bind(&name)
    .bind(&url)
    .bind(auth.stored_kind())
    .bind(auth.secret())
    .bind(auth.header())
    .bind(&audit.actor)
    .bind(&now)
    .bind(oauth_state)
    .bind(id)
    .fetch_one(&mut *tx)
    .await
    .on_conflict(|| format!("the server already has an external source named {name:?}"))?;
    tx.commit().await?;
    state.external.forget(id);
    let updated = Source::from_row(&row)?;
    let event = NewEvent::info(
        "external.update",
        format!("external source {} changed ({})", updated.name, updated.url),
    )
    .server(&updated.server_id)
    .details(
        json!({"source_id": updated.id, "url_changed": updated.url != source.url,
                    "auth_type": updated.auth.kind()}),
    );
    activity::record_now(state, audit, event).await?;
    Ok(updated)
}

/// Deletes a source and (by cascade) the passthrough tools imported from it.
pub async fn delete_recorded(state: &AppState, id: &str, audit: &Audit) -> Result<()> {
    let source = get(&state.db, id).await?;
    sqlx::query("DELETE FROM external_sources WHERE id = $1")
        .bind(id)
        .execute(&state.db.pool)
        .await?;
    state.external.forget(id);
    let event = NewEvent::warning(
        "external.delete",
        format!(
            "external source {} deleted with its imported tools",
            source.name
        ),
    )
    .server(&source.server_id)
    .details(json!({"source_id": source.id}));
    activity::record_now(state, audit, event).await
}

/// Connects, lists the source's tools, caches them. A failure is recorded on the source (status
/// `error`, `last_error`) and returned as a 502-style error.
pub async fn discover_recorded(
    state: &AppState,
    id: &str,
    audit: &Audit,
) -> Result<(Source, Vec<Discovered>)> {
    let source = get(&state.db, id).await?;
    source.require_approved()?;
    let secrets = crate::secrets::values(state, &source.server_id).await?;
    let auth = resolve_auth(&source, &secrets)?;
    let contact = async {
        let client = state.external.connect(state, &source, &auth).await?;
        let version = negotiated_version(&client);
        let listed = client
            .list_all_tools()
            .await
            .map_err(|err| format!("tools/list failed: {}", readable(&err)))?;
        let _ = client.cancel().await;
        Ok::<_, String>((version, listed))
    };
    let outcome = match tokio::time::timeout(CONTACT_TIMEOUT, contact).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("no answer within {} s", CONTACT_TIMEOUT.as_secs())),
    };
    let (version, listed) = match outcome {
        Ok(found) => found,
        Err(message) => {
            let message = failure(state, &source, &message, &auth).await;
            record_contact(state, &source, Err(&message), audit).await?;
            return Err(Error::BadGateway(format!(
                "the external source {:?} could not be discovered: {message}",
                source.name
            )));
        }
    };
    let total = listed.len();
    let discovered: Vec<Discovered> = listed
        .into_iter()
        .take(DISCOVERED_MAX)
        .map(|tool| Discovered {
            name: tool.name.to_string(),
            description: tool
                .description
                .as_deref()
                .unwrap_or_default()
                .chars()
                .take(crate::servers::DESCRIPTION_MAX)
                .collect(),
            input_schema: Value::Object((*tool.input_schema).clone()),
        })
        .collect();
    let cache = Value::Array(discovered.iter().map(Discovered::to_json).collect()).to_string();
    let now = db::now();
    sqlx::query(
        "UPDATE external_sources SET discovered_tools = $1, tool_count = $2, last_discovered_at = $3, \
         last_checked_at = $3, last_error = NULL, status = 'active', protocol_version = $4, updated_at = $3 \
         WHERE id = $5",
    )
    .bind(&cache)
    .bind(discovered.len() as i64)
    .bind(&now)
    .bind(&version)
    .bind(&source.id)
    .execute(&state.db.pool)
    .await?;
    let event = NewEvent::info(
        "external.discover",
        format!(
            "external source {}: {} tools discovered{}",
            source.name,
            discovered.len(),
            if total > DISCOVERED_MAX {
                format!(" (of {total}; the rest were cut)")
            } else {
                String::new()
            }
        ),
    )
    .server(&source.server_id)
    .details(json!({"source_id": source.id, "protocol_version": version}));
    activity::record_now(state, audit, event).await?;
    Ok((get(&state.db, id).await?, discovered))
}

/// The cached tools of the last discovery, each with whether it was imported already.
pub async fn cached_tools(db: &Db, id: &str) -> Result<Vec<(Discovered, bool)>> {
    let source = get(db, id).await?;
    let imported = imported_remote_tools(db, &source.id).await?;
    Ok(source
        .discovered()
        .into_iter()
        .map(|tool| {
            let already = imported.contains(&tool.name);
            (tool, already)
        })
        .collect())
}

async fn imported_remote_tools(db: &Db, source_id: &str) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT v.python_code FROM tools t JOIN tool_versions v ON v.tool_id = t.id AND v.version = t.current_version \
         WHERE t.external_source_id = $1",
    )
    .bind(source_id)
    .fetch_all(&db.pool)
    .await?;
    let mut names = Vec::with_capacity(rows.len());
    for row in rows {
        if let Ok(binding) = Binding::parse(&row.try_get::<String, _>("python_code")?) {
            names.push(binding.remote_tool);
        }
    }
    Ok(names)
}

pub struct Imported {
    pub tool: tools::Tool,
    pub version: tools::Version,
    pub remote_tool: String,
}

pub struct Skipped {
    pub remote_tool: String,
    pub reason: String,
}

/// Imports discovered tools as draft passthrough tools named `{source}_{tool}` (sanitised).
/// Names not in the cache, already imported or already taken are skipped with a reason.
pub async fn import_recorded(
    state: &AppState,
    id: &str,
    names: &[String],
    source_of_change: tools::Source,
    audit: &Audit,
) -> Result<(Vec<Imported>, Vec<Skipped>)> {
    if names.is_empty() {
        return Err(Error::Validation(
            "tool_names must name at least one discovered tool".into(),
        ));
    }
    if names.len() > DISCOVERED_MAX {
        return Err(Error::Validation(format!(
            "at most {DISCOVERED_MAX} tools per import"
        )));
    }
    let source = get(&state.db, id).await?;
    let cached = source.discovered();
    let imported = imported_remote_tools(&state.db, &source.id).await?;
    let (mut done, mut skipped) = (Vec::new(), Vec::new());
    for remote in names {
        let skip = |reason: String| Skipped {
            remote_tool: remote.clone(),
            reason,
        };
        let Some(found) = cached.iter().find(|tool| &tool.name == remote) else {
            skipped.push(skip(
                "not among the discovered tools (run discovery first)".into(),
            ));
            continue;
        };
        if imported.contains(remote) {
            skipped.push(skip("already imported".into()));
            continue;
        }
        let Some(name) = local_name(&source.name, remote) else {
            skipped.push(skip("no valid MCPbox tool name can be made from it".into()));
            continue;
        };
        let schema = match &found.input_schema {
            Value::Object(_) => found.input_schema.to_string(),
            _ => json!({"type": "object"}).to_string(),
        };
        if schema.len() > SCHEMA_MAX_BYTES {
            skipped.push(skip(format!(
                "its input schema is larger than {} KB",
                SCHEMA_MAX_BYTES / 1024
            )));
            continue;
        }
        let binding = Binding {
            source_id: source.id.clone(),
            remote_tool: remote.clone(),
        };
        let valid = tools::ValidCode::passthrough(binding.to_content(), schema, &found.description);
        let new = tools::NewTool {
            server_id: &source.server_id,
            name: &name,
            description: "",
            code: "",
            source: source_of_change,
            audit,
            annotations: None,
        };
        match tools::create_passthrough(state, new, &source.id, &valid).await {
            Ok((tool, version)) => {
                // `tools::create_passthrough` wrote the `tool.create` row; this one says where
                // the tool comes from.
                let event = NewEvent::info(
                    "external.import",
                    format!(
                        "tool {} imported from external source {} (version 1, draft)",
                        tool.name, source.name
                    ),
                )
                .server(&tool.server_id)
                .tool(&tool.id)
                .details(json!({"source_id": source.id, "remote_tool": remote}));
                activity::record_now(state, audit, event).await?;
                done.push(Imported {
                    tool,
                    version,
                    remote_tool: remote.clone(),
                });
            }
            Err(Error::Conflict(message)) => skipped.push(skip(message)),
            Err(err) => return Err(err),
        }
    }
    Ok((done, skipped))
}

/// The longest name an imported tool is given: one that fits under any server name
/// (30 + 2 + 32 = `names::PUBLIC_NAME_MAX`), so an import never fails on length.
const IMPORTED_NAME_MAX: usize = crate::names::PUBLIC_NAME_MAX - crate::names::SERVER_NAME_MAX - 2;

/// `{source}_{tool}` made into a valid tool name: lower case, runs of anything else as one `_`,
/// cut to `IMPORTED_NAME_MAX`.
fn local_name(source: &str, remote: &str) -> Option<Name> {
    let mut name = String::new();
    for c in format!("{source}_{remote}").chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.ends_with('_') {
            name.push('_');
        }
    }
    let mut name: String = name.chars().take(IMPORTED_NAME_MAX).collect();
    while name.ends_with('_') {
        name.pop();
    }
    Name::tool(&name).ok()
}

/// Connects and lists tools (nothing cached): records `active` or `error` with the reason.
pub async fn health_recorded(state: &AppState, id: &str, audit: &Audit) -> Result<Source> {
    let source = get(&state.db, id).await?;
    source.require_approved()?;
    let secrets = crate::secrets::values(state, &source.server_id).await?;
    let auth = resolve_auth(&source, &secrets)?;
    let contact = async {
        let client = state.external.connect(state, &source, &auth).await?;
        let version = negotiated_version(&client);
        client
            .list_tools(None)
            .await
            .map_err(|err| format!("tools/list failed: {}", readable(&err)))?;
        let _ = client.cancel().await;
        Ok::<_, String>(version)
    };
    let outcome = match tokio::time::timeout(CONTACT_TIMEOUT, contact).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("no answer within {} s", CONTACT_TIMEOUT.as_secs())),
    };
    match outcome {
        Ok(version) => {
            sqlx::query("UPDATE external_sources SET protocol_version = $1 WHERE id = $2")
                .bind(version)
                .bind(&source.id)
                .execute(&state.db.pool)
                .await?;
            record_contact(state, &source, Ok(()), audit).await?
        }
        Err(message) => {
            let message = failure(state, &source, &message, &auth).await;
            record_contact(state, &source, Err(&message), audit).await?
        }
    }
    get(&state.db, id).await
}

/// Writes the outcome of a contact; a change of status gets an activity row.
async fn record_contact(
    state: &AppState,
    source: &Source,
    outcome: std::result::Result<(), &str>,
    audit: &Audit,
) -> Result<()> {
    let (status, error) = match outcome {
        Ok(()) => ("active", None),
        Err(message) => ("error", Some(message)),
    };
    let now = db::now();
    sqlx::query(
        "UPDATE external_sources SET status = $1, last_error = $2, last_checked_at = $3, updated_at = $3 \
         WHERE id = $4 AND status <> 'pending_approval'",
    )
    .bind(status)
    .bind(error)
    .bind(&now)
    .bind(&source.id)
    .execute(&state.db.pool)
    .await?;
    if source.status != status {
        if let Some(error) = error {
            // Raised where the failure is seen (a check, a discovery or a call); never waits.
            state.alerts.raise(
                crate::alerts::Kind::ExternalSourceDown,
                source.id.clone(),
                format!(
                    "the external MCP source {} ({}) stopped answering: {error}",
                    source.name, source.url
                ),
                json!({"source_id": source.id, "server_id": source.server_id, "name": source.name}),
            );
        }
        let message = match error {
            Some(error) => format!("external source {} is failing: {error}", source.name),
            None => format!("external source {} answers again", source.name),
        };
        let event = if error.is_some() {
            NewEvent::warning("external.status", message)
        } else {
            NewEvent::info("external.status", message)
        }
        .server(&source.server_id)
        .details(json!({"source_id": source.id, "status": status}));
        activity::record_now(state, audit, event).await?;
    }
    Ok(())
}

/// The auth of a source with its secret's value from the server's decrypted secrets.
fn resolve_auth(source: &Source, secrets: &BTreeMap<String, String>) -> Result<Auth> {
    let value = |name: &str| {
        secrets.get(name).cloned().ok_or_else(|| {
            Error::Conflict(format!(
                "the server secret {name} that the external source {:?} authenticates with has \
                 no value: an admin sets it",
                source.name
            ))
        })
    };
    Ok(match &source.auth {
        Auth::None => Auth::None,
        Auth::OAuth => Auth::OAuth,
        Auth::Bearer { secret } => Auth::Bearer {
            secret: value(secret)?,
        },
        Auth::Header { header, secret } => Auth::Header {
            header: header.clone(),
            secret: value(secret)?,
        },
    })
}

/// Why a contact failed, as stored and shown: secrets redacted; for an OAuth source whose grant
/// the authorization server or the source refused (a 401 even after a refresh), the
/// sign-in-needed message, and the source is marked so.
async fn failure(state: &AppState, source: &Source, message: &str, auth: &Auth) -> String {
    if *auth == Auth::OAuth {
        if oauth::is_auth_refusal(message)
            && let Err(err) = oauth::mark_sign_in_needed(&state.db, &source.id).await
        {
            tracing::warn!(error = %err, "cannot mark the source as needing a sign-in");
        }
        if let Ok(now) = get(&state.db, &source.id).await
            && now.oauth_state.as_deref() != Some("signed_in")
        {
            return oauth::SIGN_IN_NEEDED.to_owned();
        }
    }
    redacted(message, auth)
}

fn redacted(message: &str, auth: &Auth) -> String {
    match auth.secret() {
        Some(secret) if !secret.is_empty() => {
            crate::execution::Redactor::new([secret]).text(message)
        }
        _ => message.to_owned(),
    }
}

/// An rmcp error without the Rust type names it embeds (`Transport [rmcp::…<…>] error`).
fn readable(err: &dyn std::fmt::Display) -> String {
    let mut text = err.to_string();
    while let Some(start) = text.find(" [rmcp::") {
        match text[start..].find(']') {
            Some(end) => text.replace_range(start..start + end + 1, ""),
            None => break,
        }
    }
    text
}

fn negotiated_version(client: &Client) -> Option<String> {
    client
        .peer_info()
        .map(|info| info.protocol_version.to_string())
}

/// Forwards an approved passthrough call (only `execution::run` calls this, with the `Approved`
/// the call-time check built and the server's decrypted secrets). A source that cannot be
/// reached is an `Unavailable` error naming it; the remote tool's own failure is an ordinary
/// result with `isError`.
#[tracing::instrument(name = "external call", skip_all, fields(
    otel.kind = "client",
    mcp.method.name = "tools/call",
    mcpbox.tool = %approved.public_name,
))]
pub async fn forward(
    state: &AppState,
    approved: &Approved,
    arguments: &Value,
    secrets: &BTreeMap<String, String>,
    actor: &str,
) -> Result<CallToolResult> {
    let binding = Binding::parse(&approved.code)?;
    let source = match get(&state.db, &binding.source_id).await {
        Ok(source) => source,
        Err(Error::NotFound(_)) => {
            return Err(Error::Conflict(
                "the external source of this tool was deleted".into(),
            ));
        }
        Err(err) => return Err(err),
    };
    if source.server_id != approved.server_id {
        tracing::error!(
            tool_id = approved.tool_id,
            "passthrough binding names another server's source; refusing"
        );
        return Err(Error::Conflict(
            "the tool's external source belongs to another server; it will not be called".into(),
        ));
    }
    source.require_approved()?;
    let auth = resolve_auth(&source, secrets)?;
    let arguments = match arguments {
        Value::Object(map) => map.clone(),
        _ => JsonObject::new(),
    };
    let mut params =
        CallToolRequestParams::new(binding.remote_tool.clone()).with_arguments(arguments);
    // The source's spans join our trace (SEP-414: `traceparent` in `_meta`; rmcp's pooled
    // client offers no per-request header). Nothing is added when tracing is off.
    let mut meta = serde_json::Map::new();
    crate::telemetry::inject_meta(&mut meta);
    if !meta.is_empty() {
        params.meta = Some(rmcp::model::RequestMetaObject(rmcp::model::MetaObject(
            meta,
        )));
    }
    let timeout = Duration::from_millis(approved.timeout_ms.max(1) as u64);
    let call = async {
        // rmcp's client loop keeps the span current at its start for its whole life (the
        // client is pooled): started outside this call's span, so the call's trace can end.
        let detached = tracing::info_span!(target: "mcpbox::external", parent: None, "client");
        let client = state
            .external
            .client(state, &source, &auth)
            .instrument(detached)
            .await?;
        match client.call_tool_once(params).await {
            Ok(CallToolResponse::Complete(result)) => Ok(result),
            Ok(_) => Err(
                "the external tool asked for more input, which MCPbox does not support".to_owned(),
            ),
            Err(err) => {
                // The connection may be broken: the next call gets a fresh one. This call is not
                // resent, since the source may have run it.
                state.external.forget(&source.id);
                Err(readable(&err))
            }
        }
    };
    let outcome = match tokio::time::timeout(timeout, call).await {
        Ok(outcome) => outcome,
        Err(_) => {
            state.external.forget(&source.id);
            Err(format!("no answer within {} ms", timeout.as_millis()))
        }
    };
    let audit = Audit {
        actor: actor.to_owned(),
        request_id: None,
    };
    match outcome {
        Ok(result) => {
            if source.status == "error" {
                record_contact(state, &source, Ok(()), &audit).await?;
            }
            Ok(result)
        }
        Err(message) => {
            let message = failure(state, &source, &message, &auth).await;
            record_contact(state, &source, Err(&message), &audit).await?;
            Err(Error::Unavailable(format!(
                "the external MCP source {:?} ({}) failed: {message}",
                source.name, source.url
            )))
        }
    }
}

type Client = RunningService<RoleClient, ClientConfig>;

/// A pooled client and the fingerprint of the URL and credential it was opened with.
struct Pooled {
    fingerprint: Vec<u8>,
    client: Arc<Client>,
}

/// Open clients of sources, one per source, reused across calls.
#[derive(Default)]
pub struct Pool {
    /// Keyed by source id. The fingerprint (URL and credential) makes a changed secret or URL
    /// open a new client instead of reusing the old one. A std mutex: held only to look up or
    /// swap an entry, never across an await.
    clients: Mutex<HashMap<String, Pooled>>,
    /// One HTTP client for every source (its own connection pool; no redirects).
    http: OnceLock<reqwest::Client>,
    /// OAuth sign-ins in progress (bounded, expiring).
    flows: oauth::Flows,
}

impl Pool {
    /// Clients held now, at most `POOL_MAX` (`/metrics` and `/health/ready`).
    pub fn clients(&self) -> usize {
        self.clients.lock().map_or(0, |clients| clients.len())
    }

    fn http(&self) -> std::result::Result<reqwest::Client, String> {
        if let Some(client) = self.http.get() {
            return Ok(client.clone());
        }
        // reqwest is built without a TLS provider of its own; ring is the one the workspace
        // already compiles. Installing twice is harmless (the first wins).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .user_agent(concat!(
                "MCPbox/",
                env!("CARGO_PKG_VERSION"),
                " (MCP client)"
            ))
            .build()
            .map_err(|err| format!("the HTTP client cannot be built: {err}"))?;
        Ok(self.http.get_or_init(|| client).clone())
    }

    /// A new client: negotiates 2026-07-28 (`server/discover`) and falls back to a 2025-11-25
    /// `initialize` session for servers that do not know it.
    /// An OAuth source's client carries rmcp's `AuthClient` over the stored grant (`oauth`).
    async fn connect(
        &self,
        state: &AppState,
        source: &Source,
        auth: &Auth,
    ) -> std::result::Result<Client, String> {
        let url = &source.url;
        if source.legacy_sse {
            let transport = sse::connect(self.http()?, url, legacy_headers(auth)?).await?;
            return serve(transport).await;
        }
        let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
        match auth {
            Auth::None | Auth::OAuth => {}
            Auth::Bearer { secret } => config = config.auth_header(secret.clone()),
            Auth::Header { header, secret } => {
                let name = reqwest::header::HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| format!("the header name {header:?} is not valid"))?;
                let mut value = reqwest::header::HeaderValue::from_str(secret).map_err(|_| {
                    "the secret cannot be sent in a header (it has control characters)".to_owned()
                })?;
                value.set_sensitive(true);
                config = config.custom_headers(HashMap::from([(name, value)]));
            }
        }
        let http = self.http()?;
        if *auth == Auth::OAuth {
            let manager = oauth::manager(state, source).await?;
            let client = rmcp::transport::AuthClient::new(http, manager);
            serve(StreamableHttpClientTransport::with_client(client, config)).await
        } else {
            serve(StreamableHttpClientTransport::with_client(http, config)).await
        }
    }

    /// The pooled client of `source`, connecting when there is none, its transport closed, or
    /// its URL or credential changed.
    async fn client(
        &self,
        state: &AppState,
        source: &Source,
        auth: &Auth,
    ) -> std::result::Result<Arc<Client>, String> {
        let fingerprint = {
            let mut hash = Sha256::new();
            hash.update(source.url.as_bytes());
            hash.update([0]);
            hash.update(auth.header().unwrap_or_default().as_bytes());
            hash.update([0]);
            hash.update(auth.secret().unwrap_or_default().as_bytes());
            hash.finalize().to_vec()
        };
        if let Ok(clients) = self.clients.lock()
            && let Some(pooled) = clients.get(&source.id)
            && pooled.fingerprint == fingerprint
            && !pooled.client.is_transport_closed()
        {
            return Ok(pooled.client.clone());
        }
        let client = Arc::new(self.connect(state, source, auth).await?);
        if let Ok(mut clients) = self.clients.lock() {
            if clients.len() >= POOL_MAX {
                clients.clear();
            }
            clients.insert(
                source.id.clone(),
                Pooled {
                    fingerprint,
                    client: client.clone(),
                },
            );
        }
        Ok(client)
    }

    /// Drops the pooled client of a source (deleted, or its connection failed).
    fn forget(&self, source_id: &str) {
        if let Ok(mut clients) = self.clients.lock() {
            clients.remove(source_id);
        }
    }
}

/// The auth headers of a legacy SSE source (sent with the stream's GET and every POST).
fn legacy_headers(auth: &Auth) -> std::result::Result<reqwest::header::HeaderMap, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    let (name, value) = match auth {
        Auth::None => return Ok(headers),
        Auth::OAuth => return Err("OAuth is not offered over the legacy SSE transport".into()),
        Auth::Bearer { secret } => (reqwest::header::AUTHORIZATION, format!("Bearer {secret}")),
        Auth::Header { header, secret } => (
            reqwest::header::HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| format!("the header name {header:?} is not valid"))?,
            secret.clone(),
        ),
    };
    let mut value = reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
        "the secret cannot be sent in a header (it has control characters)".to_owned()
    })?;
    value.set_sensitive(true);
    headers.insert(name, value);
    Ok(headers)
}

/// Negotiates 2026-07-28 (`server/discover`), falling back to a 2025-11-25 `initialize`.
async fn serve<T, E, A>(transport: T) -> std::result::Result<Client, String>
where
    T: rmcp::transport::IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let info = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("mcpbox", env!("CARGO_PKG_VERSION")),
    );
    info.serve_with_lifecycle(
        transport,
        ClientLifecycleMode::Auto {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            legacy_version: Some(ProtocolVersion::V_2025_11_25),
        },
    )
    .await
    .map_err(|err| format!("cannot connect: {}", readable(&err)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_without_credentials_are_accepted() {
        for good in [
            "http://127.0.0.1:8000/mcp",
            "https://mcp.example.com/mcp",
            "http://nas.local:9000/",
        ] {
            assert!(check_url(good).is_ok(), "{good}");
        }
        for bad in [
            "file:///etc/passwd",
            "ftp://example.com/",
            "gopher://127.0.0.1:6379/",
            "unix:/var/run/docker.sock",
            "javascript:alert(1)",
            "http://user:pass@example.com/",
            "http://token@example.com/",
            "https://example.com/#x",
            "not a url",
            "",
        ] {
            assert!(check_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn auth_names_a_secret_and_a_sendable_header() {
        assert_eq!(Auth::parse(None, None, None).ok(), Some(Auth::None));
        assert!(Auth::parse(Some("bearer"), None, None).is_err());
        assert!(Auth::parse(Some("bearer"), Some("lower"), None).is_err());
        assert_eq!(
            Auth::parse(Some("header"), Some("API_KEY"), Some("X-Api-Key")).ok(),
            Some(Auth::Header {
                header: "x-api-key".into(),
                secret: "API_KEY".into()
            })
        );
        for reserved in ["Host", "mcp-session-id", "Content-Length", "bad header"] {
            assert!(
                Auth::parse(Some("header"), Some("API_KEY"), Some(reserved)).is_err(),
                "{reserved}"
            );
        }
        assert!(Auth::parse(Some("kerberos"), None, None).is_err());
        assert_eq!(
            Auth::parse(Some("oauth"), None, None).ok(),
            Some(Auth::OAuth)
        );
        assert!(Auth::parse(Some("oauth"), Some("API_KEY"), None).is_err());
        assert!(Auth::parse(Some("none"), Some("API_KEY"), None).is_err());
    }

    #[test]
    fn imported_names_are_valid_tool_names() {
        let name = |s: &str, t: &str| local_name(s, t).map(|n| n.as_str().to_owned());
        assert_eq!(
            name("weather", "getForecast").as_deref(),
            Some("weather_getforecast")
        );
        assert_eq!(name("gh", "list-issues").as_deref(), Some("gh_list_issues"));
        assert_eq!(name("gh", "a__b").as_deref(), Some("gh_a_b"));
        assert_eq!(
            name("source", &"x".repeat(80)).map(|n| n.len()),
            Some(IMPORTED_NAME_MAX)
        );
        assert_eq!(name("s", "---").as_deref(), Some("s"));
    }

    #[test]
    fn rmcp_type_names_are_left_out_of_errors() {
        let raw = "Send message error Transport [rmcp::transport::worker::WorkerTransport<rmcp::X<reqwest::Client>>] error: Client error: refused";
        assert_eq!(
            readable(&raw),
            "Send message error Transport error: Client error: refused"
        );
    }

    #[test]
    fn a_binding_survives_its_stored_form() {
        let binding = Binding {
            source_id: "id".into(),
            remote_tool: "echo \"x\"".into(),
        };
        assert_eq!(Binding::parse(&binding.to_content()).ok(), Some(binding));
        assert!(Binding::parse("print(1)").is_err());
    }
}

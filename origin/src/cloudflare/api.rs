//! REST routes of the remote set-up (admin only, every change recorded in the activity log):
//! `/api/cloudflare/…` and `/api/settings/edge`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use contract::ErrorBody;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use utoipa::ToSchema;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

use super::client::{Account, Connection};
use super::edge::{self, EdgeSettings, SyncStatus};
use super::store::{self, Step, StepError};
use super::wizard::{self, Removed, Request};
use super::{Failure, FailureBody, tunnel_auth};
use crate::activity::Audited;
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::error::OptionalJson;

/// The errors every wizard step can answer with besides its own 400 and 409: one list for the
/// five step routes' documents.
struct StepErrors;

impl utoipa::IntoResponses for StepErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let failure = <FailureBody as ToSchema>::name();
        let error = <ErrorBody as ToSchema>::name();
        [
            ("401", "No valid bearer token", &error),
            ("403", "Not an admin, or the Cloudflare token lacks a permission (code cloudflare_permission_missing, with the hint)", &failure),
            ("413", "The body is larger than the limit", &failure),
            ("422", "A field is missing, of the wrong type or not acceptable", &failure),
            ("429", "Too many requests; Retry-After says when to try again", &error),
            ("502", "Cloudflare failed or could not be reached (code upstream_failed)", &failure),
            ("503", "Cloudflare is rate limiting (code cloudflare_rate_limited)", &failure),
        ]
        .into_iter()
        .map(|(status, description, schema)| {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema.as_ref())))
                .build();
            let response = ResponseBuilder::new()
                .description(description)
                .content("application/json", content)
                .build();
            (status.to_owned(), response.into())
        })
        .collect()
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/cloudflare/status", get(status))
        .route("/api/cloudflare/token", post(token))
        .route("/api/cloudflare/tunnel", get(tunnel_health).post(tunnel))
        .route("/api/cloudflare/tunnel/token", post(tunnel_token))
        .route("/api/cloudflare/vpc-service", post(vpc_service))
        .route("/api/cloudflare/worker", post(worker))
        .route("/api/cloudflare/access", post(access))
        .route("/api/cloudflare/connect", get(connect))
        .route("/api/cloudflare/teardown", post(teardown))
        .route(
            "/api/cloudflare/allowlist",
            get(allowlist).put(set_allowlist),
        )
        .route("/api/settings/edge", get(edge_show).put(edge_update))
        .route("/api/settings/edge/sync", post(edge_sync))
}

/// The wizard's state: `GET /api/cloudflare/status`, and inside every step's answer.
#[derive(Serialize, ToSchema)]
#[schema(as = cloudflare::Status)]
pub struct StatusBody {
    /// Every step is done.
    configured: bool,
    /// The account step 1 chose; null before.
    account: Option<Account>,
    team_domain: Option<String>,
    /// The Worker's URL (step 4); null before.
    worker_url: Option<String>,
    /// The six steps, in order.
    steps: Vec<StepStatus>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = cloudflare::StepStatus)]
struct StepStatus {
    step: Step,
    /// 1 to 6.
    number: u8,
    /// `pending`, `running`, `done` or `failed`.
    status: String,
    /// What the step did, line by line.
    progress: Vec<String>,
    updated_at: Option<String>,
    /// Why the step failed (absent unless it did).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<StepError>,
}

/// The status document (also what the UI renders).
pub async fn status_json(state: &AppState) -> crate::Result<StatusBody> {
    let db = &state.db;
    let running_here = state.remote.lock.try_lock().is_err();
    let steps: Vec<StepStatus> = store::steps(db)
        .await?
        .into_iter()
        .map(|s| {
            // A step left "running" by a process that stopped is not running any more.
            let (status, error) = if s.status == "running" && !running_here {
                (
                    "failed".to_owned(),
                    Some(StepError {
                        message: "interrupted: the origin stopped during this step".to_owned(),
                        cloudflare: Vec::new(),
                        hint: "Run this step again; it continues where it stopped.".to_owned(),
                    }),
                )
            } else {
                (s.status, s.error)
            };
            StepStatus {
                step: s.step,
                number: s.step.number(),
                status,
                progress: s.progress,
                updated_at: s.updated_at,
                error,
            }
        })
        .collect();
    let account = match (
        store::value(db, "account_id").await?,
        store::value(db, "account_name").await?,
    ) {
        (Some(id), name) => Some(Account {
            id,
            name: name.unwrap_or_default(),
        }),
        _ => None,
    };
    let configured = steps.iter().all(|s| s.status == "done");
    Ok(StatusBody {
        configured,
        account,
        team_domain: store::value(db, "team_domain").await?,
        worker_url: store::value(db, "worker_url").await?,
        steps,
    })
}

#[utoipa::path(get, path = "/api/cloudflare/status", tag = "cloudflare", operation_id = "cloudflare_status",
    responses((status = 200, description = "Every step's status, progress and error", body = StatusBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = FailureBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)),
    security(("bearer" = [])))]
async fn status(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<StatusBody>, Failure> {
    auth.require(Role::Admin)?;
    Ok(Json(status_json(&state).await?))
}

/// The inputs of every step (each step reads its own; an empty body is the same as `{}`).
#[derive(Deserialize, Default, ToSchema)]
#[schema(as = cloudflare::StepInput)]
#[serde(deny_unknown_fields)]
struct StepBody {
    /// Steps 2 to 5: the name of what the step creates (a default otherwise).
    name: Option<String>,
    /// Steps 2 to 5: replace a resource of that name this install did not create.
    #[serde(default)]
    replace: bool,
    /// Step 1: the Cloudflare API token.
    api_token: Option<String>,
    /// Step 1: the account, when the token reaches several.
    account_id: Option<String>,
    /// Step 3: where the VPC service points (default: the tunnel listener).
    host: Option<String>,
    #[schema(maximum = 65535)]
    port: Option<u16>,
    /// Step 4: the Worker's public URL, when it is not `workers.dev`.
    public_url: Option<String>,
    /// Step 5: the remote email allowlist (addresses and `@domain` entries).
    allowed_emails: Option<Vec<String>>,
}

impl From<StepBody> for Request {
    fn from(body: StepBody) -> Request {
        Request {
            name: body.name,
            replace: body.replace,
            api_token: body.api_token,
            account_id: body.account_id,
            host: body.host,
            port: body.port,
            public_url: body.public_url,
            allowed_emails: body.allowed_emails,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = cloudflare::StepDone)]
struct StepDone {
    step: Step,
    /// Always `done` (a failed step is an error).
    status: &'static str,
    progress: Vec<String>,
    wizard: StatusBody,
}

/// One step through the wizard; the answer is the step's outcome and the whole status. The
/// handlers read an empty body and `null` alike as no input (`OptionalJson<Option<_>>`), as the
/// document says.
async fn step(
    state: AppState,
    audited: Audited,
    step: Step,
    body: Option<StepBody>,
) -> Result<Json<StepDone>, Failure> {
    audited.auth.require(Role::Admin)?;
    let report = wizard::run(
        &state,
        step,
        body.unwrap_or_default().into(),
        &audited.audit,
    )
    .await?;
    Ok(Json(StepDone {
        step: report.step,
        status: "done",
        progress: report.progress,
        wizard: status_json(&state).await?,
    }))
}

#[utoipa::path(post, path = "/api/cloudflare/token", tag = "cloudflare", operation_id = "cloudflare_token",
    description = "Step 1: checks the API token's permissions and chooses the account.",
    request_body = Option<StepBody>,
    responses((status = 200, description = "Step 1 done", body = StepDone),
        (status = 400, description = "The body is not valid JSON of this shape, or Cloudflare refused the API token (code cloudflare_token_invalid)", body = FailureBody),
        (status = 409, description = "Another step is running, or the token reaches several accounts and none was chosen (`accounts` lists them)", body = FailureBody),
        StepErrors),
    security(("bearer" = [])))]
async fn token(
    State(state): State<AppState>,
    audited: Audited,
    OptionalJson(body): OptionalJson<Option<StepBody>>,
) -> Result<Json<StepDone>, Failure> {
    step(state, audited, Step::Token, body.flatten()).await
}

#[utoipa::path(post, path = "/api/cloudflare/tunnel", tag = "cloudflare", operation_id = "cloudflare_tunnel",
    description = "Step 2: creates the tunnel.",
    request_body = Option<StepBody>,
    responses((status = 200, description = "Step 2 done", body = StepDone),
        (status = 400, description = "Bad input, or Cloudflare refused the API token (code cloudflare_token_invalid)", body = FailureBody),
        (status = 409, description = "Another step is running, an earlier step is not done, or a tunnel of this name exists that this install did not create (send replace: true)", body = FailureBody),
        StepErrors),
    security(("bearer" = [])))]
async fn tunnel(
    State(state): State<AppState>,
    audited: Audited,
    OptionalJson(body): OptionalJson<Option<StepBody>>,
) -> Result<Json<StepDone>, Failure> {
    step(state, audited, Step::Tunnel, body.flatten()).await
}

#[utoipa::path(post, path = "/api/cloudflare/vpc-service", tag = "cloudflare", operation_id = "cloudflare_vpc_service",
    description = "Step 3: creates the Workers VPC service that points at the tunnel listener.",
    request_body = Option<StepBody>,
    responses((status = 200, description = "Step 3 done", body = StepDone),
        (status = 400, description = "Bad input, or Cloudflare refused the API token (code cloudflare_token_invalid)", body = FailureBody),
        (status = 409, description = "Another step is running, or an earlier step is not done", body = FailureBody),
        StepErrors),
    security(("bearer" = [])))]
async fn vpc_service(
    State(state): State<AppState>,
    audited: Audited,
    OptionalJson(body): OptionalJson<Option<StepBody>>,
) -> Result<Json<StepDone>, Failure> {
    step(state, audited, Step::VpcService, body.flatten()).await
}

#[utoipa::path(post, path = "/api/cloudflare/worker", tag = "cloudflare", operation_id = "cloudflare_worker",
    description = "Step 4: the KV namespace and the Worker with its bindings.",
    request_body = Option<StepBody>,
    responses((status = 200, description = "Step 4 done", body = StepDone),
        (status = 400, description = "Bad input, or Cloudflare refused the API token (code cloudflare_token_invalid)", body = FailureBody),
        (status = 409, description = "Another step is running, or an earlier step is not done", body = FailureBody),
        StepErrors),
    security(("bearer" = [])))]
async fn worker(
    State(state): State<AppState>,
    audited: Audited,
    OptionalJson(body): OptionalJson<Option<StepBody>>,
) -> Result<Json<StepDone>, Failure> {
    step(state, audited, Step::Worker, body.flatten()).await
}

#[utoipa::path(post, path = "/api/cloudflare/access", tag = "cloudflare", operation_id = "cloudflare_access",
    description = "Step 5: the Access for SaaS app and its policy; then step 6's probe.",
    request_body = Option<StepBody>,
    responses((status = 200, description = "Step 5 done (and step 6's probe passed)", body = StepDone),
        (status = 400, description = "Bad input, or Cloudflare refused the API token (code cloudflare_token_invalid)", body = FailureBody),
        (status = 409, description = "Another step is running, or an earlier step is not done", body = FailureBody),
        StepErrors),
    security(("bearer" = [])))]
async fn access(
    State(state): State<AppState>,
    audited: Audited,
    OptionalJson(body): OptionalJson<Option<StepBody>>,
) -> Result<Json<StepDone>, Failure> {
    step(state, audited, Step::Access, body.flatten()).await
}

#[derive(Serialize, ToSchema)]
#[schema(as = cloudflare::Connect)]
struct ConnectBody {
    /// The remote MCP URL (the Worker's `/mcp`).
    mcp_url: String,
    snippets: Snippets,
}

/// What to paste into each client.
#[derive(Serialize, ToSchema)]
#[schema(as = cloudflare::Snippets)]
struct Snippets {
    claude_ai: String,
    chatgpt: String,
    claude_code: String,
    cursor: String,
}

#[utoipa::path(get, path = "/api/cloudflare/connect", tag = "cloudflare", operation_id = "cloudflare_connect",
    responses((status = 200, description = "The MCP URL and client snippets", body = ConnectBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = FailureBody),
        (status = 409, description = "Step 5 is not done", body = FailureBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)),
    security(("bearer" = [])))]
async fn connect(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<ConnectBody>, Failure> {
    auth.require(Role::Admin)?;
    let Some(info) = wizard::connect_info(&state).await? else {
        return Err(Failure::conflict(
            "remote access is not set up yet: finish step 5 first",
        ));
    };
    Ok(Json(ConnectBody {
        mcp_url: info.mcp_url,
        snippets: Snippets {
            claude_ai: info.claude_ai,
            chatgpt: info.chatgpt,
            claude_code: info.claude_code,
            cursor: info.cursor,
        },
    }))
}

/// `{"confirm": true}`: anything else (no body included) is refused.
#[derive(Deserialize, ToSchema)]
#[schema(as = cloudflare::Teardown)]
#[serde(deny_unknown_fields)]
struct TeardownBody {
    #[serde(default)]
    #[schema(required = true, schema_with = only_true)]
    confirm: bool,
}

/// `true` and nothing else.
fn only_true() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Boolean)
        .enum_values(Some([true]))
        .build()
}

#[derive(Serialize, ToSchema)]
#[schema(as = cloudflare::TeardownResult)]
struct TeardownResult {
    /// Every part, in the order it was removed.
    removed: Vec<Removed>,
}

#[utoipa::path(post, path = "/api/cloudflare/teardown", tag = "cloudflare", operation_id = "cloudflare_teardown",
    request_body = TeardownBody,
    responses((status = 200, description = "What was removed, in order", body = TeardownResult),
        (status = 400, description = "The body is not {\"confirm\": true}, or Cloudflare refused the stored token", body = FailureBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not an admin, or the Cloudflare token lacks a permission (code cloudflare_permission_missing, with the hint)", body = FailureBody),
        (status = 409, description = "Another step is running", body = FailureBody),
        (status = 413, description = "The body is larger than the limit", body = FailureBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody),
        (status = 502, description = "Cloudflare failed or could not be reached (code upstream_failed)", body = FailureBody),
        (status = 503, description = "Cloudflare is rate limiting (code cloudflare_rate_limited)", body = FailureBody)),
    security(("bearer" = [])))]
async fn teardown(
    State(state): State<AppState>,
    audited: Audited,
    OptionalJson(body): OptionalJson<Option<TeardownBody>>,
) -> Result<Json<TeardownResult>, Failure> {
    audited.auth.require(Role::Admin)?;
    if !body.flatten().is_some_and(|b| b.confirm) {
        return Err(Failure::new(
            axum::http::StatusCode::BAD_REQUEST,
            "bad_request",
            "teardown deletes what the wizard created in Cloudflare: send {\"confirm\": true}",
        ));
    }
    let removed = wizard::teardown(&state, &audited.audit).await?;
    Ok(Json(TeardownResult { removed }))
}

/// The tunnel as the Cloudflare API reports it now.
#[derive(Serialize, ToSchema)]
#[schema(as = cloudflare::Tunnel)]
struct TunnelBody {
    id: String,
    name: String,
    /// Cloudflare's word: `healthy`, `degraded`, `down` or `inactive`.
    status: Option<String>,
    created_at: Option<String>,
    connections: Vec<Connection>,
}

#[utoipa::path(get, path = "/api/cloudflare/tunnel", tag = "cloudflare", operation_id = "cloudflare_tunnel_health",
    responses((status = 200, description = "The tunnel's status and connections from the API", body = TunnelBody),
        (status = 400, description = "Bad input, or Cloudflare refused the API token (code cloudflare_token_invalid)", body = FailureBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not an admin, or the Cloudflare token lacks a permission (code cloudflare_permission_missing, with the hint)", body = FailureBody),
        (status = 409, description = "No tunnel yet (step 2)", body = FailureBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody),
        (status = 502, description = "Cloudflare failed or could not be reached (code upstream_failed)", body = FailureBody),
        (status = 503, description = "Cloudflare is rate limiting (code cloudflare_rate_limited)", body = FailureBody)),
    security(("bearer" = [])))]
async fn tunnel_health(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<TunnelBody>, Failure> {
    auth.require(Role::Admin)?;
    let Some(tunnel) = wizard::tunnel_health(&state).await? else {
        return Err(Failure::conflict("no tunnel yet: run step 2 first"));
    };
    Ok(Json(TunnelBody {
        id: tunnel.id,
        name: tunnel.name,
        status: tunnel.status,
        created_at: tunnel.created_at,
        connections: tunnel.connections,
    }))
}

#[derive(Serialize, ToSchema)]
#[schema(as = cloudflare::TunnelToken)]
struct TunnelToken {
    /// The connector token (a secret: reading it is recorded).
    token: String,
    /// The cloudflared command line that uses it.
    command: String,
}

#[utoipa::path(post, path = "/api/cloudflare/tunnel/token", tag = "cloudflare", operation_id = "cloudflare_tunnel_token",
    responses((status = 200, description = "The connector token (recorded in the activity log)", body = TunnelToken),
        (status = 400, description = "Bad input, or Cloudflare refused the API token (code cloudflare_token_invalid)", body = FailureBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not an admin, or the Cloudflare token lacks a permission (code cloudflare_permission_missing, with the hint)", body = FailureBody),
        (status = 409, description = "No tunnel yet (step 2)", body = FailureBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody),
        (status = 502, description = "Cloudflare failed or could not be reached (code upstream_failed)", body = FailureBody),
        (status = 503, description = "Cloudflare is rate limiting (code cloudflare_rate_limited)", body = FailureBody)),
    security(("bearer" = [])))]
async fn tunnel_token(
    State(state): State<AppState>,
    audited: Audited,
) -> Result<Json<TunnelToken>, Failure> {
    audited.auth.require(Role::Admin)?;
    let token = wizard::tunnel_token(&state, &audited.audit).await?;
    Ok(Json(TunnelToken {
        command: format!("cloudflared tunnel run --token {token}"),
        token,
    }))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = cloudflare::AllowlistUpdate)]
#[serde(deny_unknown_fields)]
struct AllowlistBody {
    /// Email addresses and `@domain` entries (trimmed, lower-cased; 1 to 200 after that).
    #[schema(min_items = 1)]
    entries: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = cloudflare::Allowlist)]
struct Allowlist {
    /// The stored list, sorted.
    entries: Vec<String>,
    /// Whether the tunnel listener checks it (it does once a list was stored).
    enforced_by_tunnel: bool,
    /// `--remote-allowed-email` entries, enforced besides the list.
    flag_entries: Vec<String>,
}

/// The list and how the tunnel listener applies it (with `--remote-allowed-email`).
async fn allowlist_json(state: &AppState) -> crate::Result<Allowlist> {
    let entries = store::allowlist(&state.db).await?;
    let auth = tunnel_auth(state).await?;
    Ok(Allowlist {
        entries,
        enforced_by_tunnel: auth.allowlist.is_some(),
        flag_entries: state.remote.config.flag_allowlist.clone(),
    })
}

#[utoipa::path(get, path = "/api/cloudflare/allowlist", tag = "cloudflare", operation_id = "cloudflare_allowlist",
    responses((status = 200, description = "The remote email allowlist", body = Allowlist),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = FailureBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)),
    security(("bearer" = [])))]
async fn allowlist(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Allowlist>, Failure> {
    auth.require(Role::Admin)?;
    Ok(Json(allowlist_json(&state).await?))
}

#[utoipa::path(put, path = "/api/cloudflare/allowlist", tag = "cloudflare", operation_id = "cloudflare_set_allowlist",
    request_body = AllowlistBody,
    responses((status = 200, description = "Stored and pushed to the Access policy", body = Allowlist),
        (status = 400, description = "The body is not valid JSON, or an entry is neither an address nor an @domain, or none or more than 200 are left", body = FailureBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not an admin, or the Cloudflare token lacks a permission (code cloudflare_permission_missing, with the hint)", body = FailureBody),
        (status = 413, description = "The body is larger than the limit", body = FailureBody),
        (status = 415, description = "The body is not sent as application/json", body = FailureBody),
        (status = 422, description = "A field is missing, of the wrong type or not acceptable", body = FailureBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody),
        (status = 502, description = "Stored and enforced by the tunnel listener, but Cloudflare failed the push to the Access policy", body = FailureBody),
        (status = 503, description = "Cloudflare is rate limiting (code cloudflare_rate_limited)", body = FailureBody)),
    security(("bearer" = [])))]
async fn set_allowlist(
    State(state): State<AppState>,
    audited: Audited,
    crate::error::ApiJson(body): crate::error::ApiJson<AllowlistBody>,
) -> Result<Json<Allowlist>, Failure> {
    audited.auth.require(Role::Admin)?;
    super::set_allowlist_recorded(&state, &body.entries, &audited.audit).await?;
    Ok(Json(allowlist_json(&state).await?))
}

/// The Worker's extra CORS origins and redirect URIs (`contract::edge`), and the KV sync status.
#[derive(Serialize, ToSchema)]
#[schema(as = edge::Settings)]
struct EdgeView {
    cors_origins: Vec<String>,
    redirect_uris: Vec<String>,
    sync: SyncStatus,
}

fn edge_json(settings: EdgeSettings, sync: SyncStatus) -> EdgeView {
    EdgeView {
        cors_origins: settings.cors_origins,
        redirect_uris: settings.redirect_uris,
        sync,
    }
}

#[utoipa::path(get, path = "/api/settings/edge", tag = "settings", operation_id = "settings_edge",
    responses((status = 200, description = "The Worker's extra CORS origins and redirect URIs, and the KV sync status", body = EdgeView),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = FailureBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)),
    security(("bearer" = [])))]
async fn edge_show(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<EdgeView>, Failure> {
    auth.require(Role::Admin)?;
    let (settings, sync) = edge::settings(&state).await?;
    Ok(Json(edge_json(settings, sync)))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = edge::SettingsUpdate)]
#[serde(deny_unknown_fields)]
struct EdgeBody {
    /// Origins (`https://app.example.com`), at most 100; blank entries are dropped.
    #[serde(default)]
    cors_origins: Vec<String>,
    /// Redirect-URI patterns, at most 100; blank entries are dropped.
    #[serde(default)]
    redirect_uris: Vec<String>,
}

#[utoipa::path(put, path = "/api/settings/edge", tag = "settings", operation_id = "settings_edge_update",
    description = "Every bad input (a body that is not JSON, of the wrong shape, or a value the Worker would refuse) is a 400.",
    request_body = EdgeBody,
    responses((status = 200, description = "Stored; `sync` says whether it reached KV", body = EdgeView),
        (status = 400, description = "The body is not JSON of this shape, or a value the Worker would refuse", body = FailureBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = FailureBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)),
    security(("bearer" = [])))]
async fn edge_update(
    State(state): State<AppState>,
    audited: Audited,
    body: Result<Json<EdgeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<EdgeView>, Failure> {
    audited.auth.require(Role::Admin)?;
    // Every bad input is a 400 here (the contract's rule for this document).
    let Json(body) = body.map_err(|rejection| {
        Failure::new(
            axum::http::StatusCode::BAD_REQUEST,
            "bad_request",
            format!(
                "the body is not {{cors_origins: [..], redirect_uris: [..]}}: {}",
                rejection.body_text()
            ),
        )
    })?;
    let input = EdgeSettings {
        cors_origins: body.cors_origins,
        redirect_uris: body.redirect_uris,
    };
    edge::update(&state, &input, &audited.audit).await?;
    let (settings, sync) = edge::settings(&state).await?;
    Ok(Json(edge_json(settings, sync)))
}

#[utoipa::path(post, path = "/api/settings/edge/sync", tag = "settings", operation_id = "settings_edge_sync",
    responses((status = 200, description = "Written to KV", body = EdgeView),
        (status = 400, description = "Bad input, or Cloudflare refused the API token (code cloudflare_token_invalid)", body = FailureBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not an admin, or the Cloudflare token lacks a permission (code cloudflare_permission_missing, with the hint)", body = FailureBody),
        (status = 409, description = "No KV namespace yet (step 4)", body = FailureBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody),
        (status = 502, description = "Cloudflare failed; the reason is kept in the sync status", body = FailureBody),
        (status = 503, description = "Cloudflare is rate limiting (code cloudflare_rate_limited)", body = FailureBody)),
    security(("bearer" = [])))]
async fn edge_sync(State(state): State<AppState>, audited: Audited) -> Response {
    if let Err(err) = audited.auth.require(Role::Admin) {
        return Failure::from(err).into_response();
    }
    let result = edge::sync(&state).await;
    let event = crate::activity::NewEvent::info("edge.sync", "edge config written to KV (retry)");
    if let Err(err) = crate::activity::record_now(&state, &audited.audit, event).await {
        return Failure::from(err).into_response();
    }
    match (result, edge::settings(&state).await) {
        (Ok(()), Ok((settings, sync))) => Json(edge_json(settings, sync)).into_response(),
        (Err(failure), _) => failure.into_response(),
        (_, Err(err)) => Failure::from(err).into_response(),
    }
}

/// This module's routes in the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(
        status,
        token,
        tunnel,
        vpc_service,
        worker,
        access,
        connect,
        teardown,
        tunnel_health,
        tunnel_token,
        allowlist,
        set_allowlist,
        edge_show,
        edge_update,
        edge_sync
    ))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}

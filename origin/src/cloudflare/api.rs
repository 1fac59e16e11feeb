//! REST routes of the remote set-up (admin only, every change recorded in the activity log):
//! `/api/cloudflare/…` and `/api/settings/edge`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::edge::{self, EdgeSettings, SyncStatus};
use super::store::{self, Step};
use super::wizard::{self, Request};
use super::{Failure, tunnel_auth};
use crate::activity::Audited;
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::error::OptionalJson;

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

/// The status document (also what the UI renders).
pub async fn status_json(state: &AppState) -> crate::Result<Value> {
    let db = &state.db;
    let running_here = state.remote.lock.try_lock().is_err();
    let steps: Vec<Value> = store::steps(db)
        .await?
        .into_iter()
        .map(|s| {
            // A step left "running" by a process that stopped is not running any more.
            let (status, error) = if s.status == "running" && !running_here {
                (
                    "failed".to_owned(),
                    Some(json!({"message": "interrupted: the origin stopped during this step", "hint": "Run this step again; it continues where it stopped."})),
                )
            } else {
                (s.status.clone(), s.error.as_ref().map(|e| json!(e)))
            };
            let mut step = json!({"step": s.step.as_str(), "number": s.step.number(), "status": status,
                "progress": s.progress, "updated_at": s.updated_at});
            if let Some(error) = error {
                step["error"] = error;
            }
            step
        })
        .collect();
    let account = match (
        store::value(db, "account_id").await?,
        store::value(db, "account_name").await?,
    ) {
        (Some(id), name) => Some(json!({"id": id, "name": name.unwrap_or_default()})),
        _ => None,
    };
    let configured = steps.iter().all(|s| s["status"] == "done");
    Ok(json!({
        "configured": configured,
        "account": account,
        "team_domain": store::value(db, "team_domain").await?,
        "worker_url": store::value(db, "worker_url").await?,
        "steps": steps,
    }))
}

#[utoipa::path(get, path = "/api/cloudflare/status", tag = "cloudflare", operation_id = "cloudflare_status", responses((status = "2XX", description = "Every step's status, progress and error"), (status = "4XX", description = "A JSON error: {\"error\": {\"code\", \"message\"}}")), security(("bearer" = [])))]
async fn status(State(state): State<AppState>, auth: AuthUser) -> Result<Json<Value>, Failure> {
    auth.require(Role::Admin)?;
    Ok(Json(status_json(&state).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StepBody {
    name: Option<String>,
    #[serde(default)]
    replace: bool,
    api_token: Option<String>,
    account_id: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    public_url: Option<String>,
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

/// One step through the wizard; the answer is the step's outcome and the whole status.
async fn step(
    state: AppState,
    audited: Audited,
    step: Step,
    body: Option<StepBody>,
) -> Result<Json<Value>, Failure> {
    audited.auth.require(Role::Admin)?;
    let report = wizard::run(
        &state,
        step,
        body.unwrap_or_default().into(),
        &audited.audit,
    )
    .await?;
    Ok(Json(json!({
        "step": report.step.as_str(),
        "status": "done",
        "progress": report.progress,
        "wizard": status_json(&state).await?,
    })))
}

#[utoipa::path(post, path = "/api/cloudflare/token", tag = "cloudflare", operation_id = "cloudflare_token", responses((status = "2XX", description = "Step 1 done"), (status = "4XX", description = "A JSON error: {\"error\": {\"code\", \"message\", \"step\", \"cloudflare\", \"hint\"}}; 409 with `accounts` when one must be chosen")), security(("bearer" = [])))]
async fn token(
    State(state): State<AppState>,
    audited: Audited,
    OptionalJson(body): OptionalJson<StepBody>,
) -> Result<Json<Value>, Failure> {
    step(state, audited, Step::Token, body).await
}

#[utoipa::path(post, path = "/api/cloudflare/tunnel", tag = "cloudflare", operation_id = "cloudflare_tunnel", responses((status = "2XX", description = "Step 2 done"), (status = "4XX", description = "A JSON error (409: a name clash, or another step running)")), security(("bearer" = [])))]
async fn tunnel(
    State(state): State<AppState>,
    audited: Audited,
    OptionalJson(body): OptionalJson<StepBody>,
) -> Result<Json<Value>, Failure> {
    step(state, audited, Step::Tunnel, body).await
}

#[utoipa::path(post, path = "/api/cloudflare/vpc-service", tag = "cloudflare", operation_id = "cloudflare_vpc_service", responses((status = "2XX", description = "Step 3 done"), (status = "4XX", description = "A JSON error")), security(("bearer" = [])))]
async fn vpc_service(
    State(state): State<AppState>,
    audited: Audited,
    OptionalJson(body): OptionalJson<StepBody>,
) -> Result<Json<Value>, Failure> {
    step(state, audited, Step::VpcService, body).await
}

#[utoipa::path(post, path = "/api/cloudflare/worker", tag = "cloudflare", operation_id = "cloudflare_worker", responses((status = "2XX", description = "Step 4 done"), (status = "4XX", description = "A JSON error")), security(("bearer" = [])))]
async fn worker(
    State(state): State<AppState>,
    audited: Audited,
    OptionalJson(body): OptionalJson<StepBody>,
) -> Result<Json<Value>, Failure> {
    step(state, audited, Step::Worker, body).await
}

#[utoipa::path(post, path = "/api/cloudflare/access", tag = "cloudflare", operation_id = "cloudflare_access", responses((status = "2XX", description = "Step 5 done (and step 6's probe passed)"), (status = "4XX", description = "A JSON error")), security(("bearer" = [])))]
async fn access(
    State(state): State<AppState>,
    audited: Audited,
    OptionalJson(body): OptionalJson<StepBody>,
) -> Result<Json<Value>, Failure> {
    step(state, audited, Step::Access, body).await
}

#[utoipa::path(get, path = "/api/cloudflare/connect", tag = "cloudflare", operation_id = "cloudflare_connect", responses((status = "2XX", description = "The MCP URL and client snippets"), (status = "4XX", description = "A JSON error (409 before step 5)")), security(("bearer" = [])))]
async fn connect(State(state): State<AppState>, auth: AuthUser) -> Result<Json<Value>, Failure> {
    auth.require(Role::Admin)?;
    let Some(info) = wizard::connect_info(&state).await? else {
        return Err(Failure::conflict(
            "remote access is not set up yet: finish step 5 first",
        ));
    };
    Ok(Json(json!({
        "mcp_url": info.mcp_url,
        "snippets": {"claude_ai": info.claude_ai, "chatgpt": info.chatgpt,
            "claude_code": info.claude_code, "cursor": info.cursor},
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TeardownBody {
    #[serde(default)]
    confirm: bool,
}

#[utoipa::path(post, path = "/api/cloudflare/teardown", tag = "cloudflare", operation_id = "cloudflare_teardown", responses((status = "2XX", description = "What was removed, in order"), (status = "4XX", description = "A JSON error (400 without confirm: true)")), security(("bearer" = [])))]
async fn teardown(
    State(state): State<AppState>,
    audited: Audited,
    OptionalJson(body): OptionalJson<TeardownBody>,
) -> Result<Json<Value>, Failure> {
    audited.auth.require(Role::Admin)?;
    if !body.is_some_and(|b| b.confirm) {
        return Err(Failure::new(
            axum::http::StatusCode::BAD_REQUEST,
            "bad_request",
            "teardown deletes what the wizard created in Cloudflare: send {\"confirm\": true}",
        ));
    }
    let removed = wizard::teardown(&state, &audited.audit).await?;
    Ok(Json(json!({"removed": removed})))
}

#[utoipa::path(get, path = "/api/cloudflare/tunnel", tag = "cloudflare", operation_id = "cloudflare_tunnel_health", responses((status = "2XX", description = "The tunnel's status and connections from the API"), (status = "4XX", description = "A JSON error (409 before step 2)")), security(("bearer" = [])))]
async fn tunnel_health(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Value>, Failure> {
    auth.require(Role::Admin)?;
    let Some(tunnel) = wizard::tunnel_health(&state).await? else {
        return Err(Failure::conflict("no tunnel yet: run step 2 first"));
    };
    let connections: Vec<Value> = tunnel
        .connections
        .iter()
        .map(|c| {
            json!({"id": c.id, "colo_name": c.colo_name, "origin_ip": c.origin_ip,
            "opened_at": c.opened_at, "client_version": c.client_version,
            "is_pending_reconnect": c.is_pending_reconnect})
        })
        .collect();
    Ok(Json(json!({
        "id": tunnel.id, "name": tunnel.name, "status": tunnel.status,
        "created_at": tunnel.created_at, "connections": connections,
    })))
}

#[utoipa::path(post, path = "/api/cloudflare/tunnel/token", tag = "cloudflare", operation_id = "cloudflare_tunnel_token", responses((status = "2XX", description = "The connector token (recorded in the activity log)"), (status = "4XX", description = "A JSON error")), security(("bearer" = [])))]
async fn tunnel_token(
    State(state): State<AppState>,
    audited: Audited,
) -> Result<Json<Value>, Failure> {
    audited.auth.require(Role::Admin)?;
    let token = wizard::tunnel_token(&state, &audited.audit).await?;
    Ok(Json(json!({
        "token": token,
        "command": format!("cloudflared tunnel run --token {token}"),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowlistBody {
    entries: Vec<String>,
}

/// The list and how the tunnel listener applies it (with `--remote-allowed-email`).
async fn allowlist_json(state: &AppState) -> crate::Result<Value> {
    let entries = store::allowlist(&state.db).await?;
    let auth = tunnel_auth(state).await?;
    Ok(json!({
        "entries": entries,
        "enforced_by_tunnel": auth.allowlist.is_some(),
        "flag_entries": state.remote.config.flag_allowlist,
    }))
}

#[utoipa::path(get, path = "/api/cloudflare/allowlist", tag = "cloudflare", operation_id = "cloudflare_allowlist", responses((status = "2XX", description = "The remote email allowlist"), (status = "4XX", description = "A JSON error")), security(("bearer" = [])))]
async fn allowlist(State(state): State<AppState>, auth: AuthUser) -> Result<Json<Value>, Failure> {
    auth.require(Role::Admin)?;
    Ok(Json(allowlist_json(&state).await?))
}

#[utoipa::path(put, path = "/api/cloudflare/allowlist", tag = "cloudflare", operation_id = "cloudflare_set_allowlist", responses((status = "2XX", description = "Stored and pushed to the Access policy"), (status = "4XX", description = "A JSON error (400: a bad entry)"), (status = "5XX", description = "Stored, but Cloudflare refused the push")), security(("bearer" = [])))]
async fn set_allowlist(
    State(state): State<AppState>,
    audited: Audited,
    crate::error::ApiJson(body): crate::error::ApiJson<AllowlistBody>,
) -> Result<Json<Value>, Failure> {
    audited.auth.require(Role::Admin)?;
    super::set_allowlist_recorded(&state, &body.entries, &audited.audit).await?;
    Ok(Json(allowlist_json(&state).await?))
}

fn edge_json(settings: &EdgeSettings, sync: &SyncStatus) -> Value {
    json!({
        "cors_origins": settings.cors_origins,
        "redirect_uris": settings.redirect_uris,
        "sync": {"version": sync.version, "synced_at": sync.synced_at, "error": sync.error},
    })
}

#[utoipa::path(get, path = "/api/settings/edge", tag = "settings", operation_id = "settings_edge", responses((status = "2XX", description = "The Worker's extra CORS origins and redirect URIs, and the KV sync status"), (status = "4XX", description = "A JSON error")), security(("bearer" = [])))]
async fn edge_show(State(state): State<AppState>, auth: AuthUser) -> Result<Json<Value>, Failure> {
    auth.require(Role::Admin)?;
    let (settings, sync) = edge::settings(&state).await?;
    Ok(Json(edge_json(&settings, &sync)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EdgeBody {
    #[serde(default)]
    cors_origins: Vec<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
}

#[utoipa::path(put, path = "/api/settings/edge", tag = "settings", operation_id = "settings_edge_update", responses((status = "2XX", description = "Stored; `sync` says whether it reached KV"), (status = "4XX", description = "A JSON error (400: a value the Worker would refuse)")), security(("bearer" = [])))]
async fn edge_update(
    State(state): State<AppState>,
    audited: Audited,
    body: Result<Json<EdgeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, Failure> {
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
    Ok(Json(edge_json(&settings, &sync)))
}

#[utoipa::path(post, path = "/api/settings/edge/sync", tag = "settings", operation_id = "settings_edge_sync", responses((status = "2XX", description = "Written to KV"), (status = "4XX", description = "A JSON error (409 before step 4)"), (status = "5XX", description = "Cloudflare refused; the reason is kept in the status")), security(("bearer" = [])))]
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
        (Ok(()), Ok((settings, sync))) => Json(edge_json(&settings, &sync)).into_response(),
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

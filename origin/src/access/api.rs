//! `/api/approvals/modules` and `/api/approvals/network` (one implementation, two kinds), and
//! `/api/servers/{id}/allowed-hosts` for admins.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{AccessRequest, Kind};
use crate::activity::Audited;
use crate::app::AppState;
use crate::approvals::Reviewer;
use crate::auth::{AuthUser, Role};
use crate::error::{ApiJson, ApiQuery, Error, Result};
use crate::pagination::{Page, PageParams};
use contract::ErrorBody;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/approvals/{kind}", get(queue))
        .route("/api/approvals/{kind}/bulk-action", post(bulk))
        .route("/api/approvals/{kind}/{id}/action", post(action))
        .route("/api/approvals/{kind}/{id}/revoke", post(revoke))
        .route("/api/approvals/{kind}/{id}", delete(remove))
        .route("/api/servers/{id}/allowed-hosts", get(hosts).post(add_host))
        .route("/api/tools/{id}/access-requests", post(create_request))
}

fn kind(segment: &str) -> Result<Kind> {
    match segment {
        "modules" => Ok(Kind::Module),
        "network" => Ok(Kind::Network),
        _ => Err(Error::NotFound("there is nothing at this path".into())),
    }
}

/// A module or network request as clients see it (REST and the management tools).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = access::Request)]
pub(crate) struct RequestBody {
    id: String,
    /// `module` or `network`.
    kind: String,
    server_id: String,
    /// The tool that asked; null for hosts an admin allowed directly.
    tool_id: Option<String>,
    /// The module name, or the host.
    target: String,
    /// Network requests: the port, or null for any.
    port: Option<i64>,
    /// Network requests: `public` (public addresses only), or `lan` (exactly this host and
    /// port, which may be a private address). Module requests: `public`.
    #[schema(pattern = "^(public|lan)$")]
    scope: String,
    justification: String,
    requested_by: String,
    /// `pending`, `approved` or `rejected`.
    status: String,
    reviewed_by: Option<String>,
    reviewed_at: Option<String>,
    rejection_reason: Option<String>,
    created_at: String,
}

impl From<AccessRequest> for RequestBody {
    fn from(r: AccessRequest) -> Self {
        RequestBody {
            id: r.id,
            kind: r.kind,
            server_id: r.server_id,
            tool_id: r.tool_id,
            target: r.target,
            port: r.port,
            scope: r.scope,
            justification: r.justification,
            requested_by: r.requested_by,
            status: r.status,
            reviewed_by: r.reviewed_by,
            reviewed_at: r.reviewed_at,
            rejection_reason: r.rejection_reason,
            created_at: r.created_at,
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct QueueQuery {
    /// `pending` (the default), `approved`, `rejected` or `all`.
    #[param(pattern = "^(pending|approved|rejected|all)$")]
    status: Option<String>,
    /// From 1 to 1 000 000 (`pagination::MAX_PAGE`); default 1.
    #[param(minimum = 1, maximum = 1000000)]
    page: Option<u32>,
    /// From 1 to 100; default 50.
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
}

#[utoipa::path(get, path = "/api/approvals/{kind}", tag = "access", operation_id = "access_queue", params(("kind" = String, Path, description = "`modules` or `network` (any other is a 404)", pattern = "^(modules|network)$"), QueueQuery), responses((status = 200, description = "A page of requests, oldest first", body = Page<RequestBody>),
        (status = 400, description = "The query string is not valid", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 404, description = "The kind is neither modules nor network", body = ErrorBody),
        (status = 422, description = "An unknown status, or a page out of range", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn queue(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(segment): Path<String>,
    ApiQuery(q): ApiQuery<QueueQuery>,
) -> Result<Json<Page<RequestBody>>> {
    auth.require(Role::Viewer)?;
    let kind = kind(&segment)?;
    let status = match q.status.as_deref().unwrap_or("pending") {
        "all" => None,
        s @ ("pending" | "approved" | "rejected") => Some(s),
        other => {
            return Err(Error::Validation(format!(
                "unknown status {other:?} (use pending, approved, rejected or all)"
            )));
        }
    };
    let request = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .validate()?;
    let (items, total) =
        super::queue(&state.db, kind, status, request.limit(), request.offset()).await?;
    Ok(Json(Page::new(
        items.into_iter().map(Into::into).collect(),
        total,
        request,
    )))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = access::Action)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    #[schema(pattern = "^(approve|reject)$")]
    action: String,
    /// Needed to reject: something the author can act on.
    reason: Option<String>,
}

async fn apply(
    state: &AppState,
    reviewer: &Reviewer,
    kind: Kind,
    id: &str,
    action: &str,
    reason: Option<&str>,
) -> Result<AccessRequest> {
    match action {
        "approve" => super::approve(state, kind, id, reviewer).await,
        "reject" => super::reject(state, kind, id, reason.unwrap_or(""), reviewer).await,
        other => Err(Error::Validation(format!(
            "unknown action {other:?} (use approve or reject)"
        ))),
    }
}

#[utoipa::path(post, path = "/api/approvals/{kind}/{id}/action", tag = "access", operation_id = "access_action", params(("kind" = String, Path, description = "`modules` or `network` (any other is a 404)", pattern = "^(modules|network)$"), ("id" = String, Path, description = "The request id")), request_body = ActionBody, responses((status = 200, description = "The request after the change", body = RequestBody),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 404, description = "No such request of this kind", body = ErrorBody),
        (status = 409, description = "The request is not pending", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "A field is of the wrong type, an unknown action, or a rejection without a reason", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn action(
    State(state): State<AppState>,
    audited: Audited,
    Path((segment, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ActionBody>,
) -> Result<Json<RequestBody>> {
    let kind = kind(&segment)?;
    let reviewer = Reviewer::from_audited(&audited)?;
    Ok(Json(
        apply(
            &state,
            &reviewer,
            kind,
            &id,
            &body.action,
            body.reason.as_deref(),
        )
        .await?
        .into(),
    ))
}

#[utoipa::path(post, path = "/api/approvals/{kind}/{id}/revoke", tag = "access", operation_id = "access_revoke", params(("kind" = String, Path, description = "`modules` or `network` (any other is a 404)", pattern = "^(modules|network)$"), ("id" = String, Path, description = "The request id")), responses((status = 200, description = "The request, pending again", body = RequestBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 404, description = "No such request of this kind", body = ErrorBody),
        (status = 409, description = "The request is not approved", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn revoke(
    State(state): State<AppState>,
    audited: Audited,
    Path((segment, id)): Path<(String, String)>,
) -> Result<Json<RequestBody>> {
    let kind = kind(&segment)?;
    let reviewer = Reviewer::from_audited(&audited)?;
    Ok(Json(
        super::revoke(&state, kind, &id, &reviewer).await?.into(),
    ))
}

#[utoipa::path(delete, path = "/api/approvals/{kind}/{id}", tag = "access", operation_id = "access_remove", params(("kind" = String, Path, description = "`modules` or `network` (any other is a 404)", pattern = "^(modules|network)$"), ("id" = String, Path, description = "The request id")), responses((status = 204, description = "Deleted"),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 404, description = "No such request of this kind", body = ErrorBody),
        (status = 409, description = "The request is approved: revoke it first", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn remove(
    State(state): State<AppState>,
    audited: Audited,
    Path((segment, id)): Path<(String, String)>,
) -> Result<StatusCode> {
    let kind = kind(&segment)?;
    let reviewer = Reviewer::from_audited(&audited)?;
    super::delete(&state, kind, &id, &reviewer).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = access::BulkAction)]
#[serde(deny_unknown_fields)]
struct BulkBody {
    #[schema(min_items = 1, max_items = 100)]
    request_ids: Vec<String>,
    #[schema(pattern = "^(approve|reject)$")]
    action: String,
    reason: Option<String>,
}

/// One request's outcome: a request that cannot change is reported here, not as an error.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = access::BulkResult)]
struct BulkResult {
    id: String,
    ok: bool,
    error: Option<String>,
}

#[utoipa::path(post, path = "/api/approvals/{kind}/bulk-action", tag = "access", operation_id = "access_bulk", params(("kind" = String, Path, description = "`modules` or `network` (any other is a 404)", pattern = "^(modules|network)$")), request_body = BulkBody, responses((status = 200, description = "Each request's outcome, in order", body = Vec<BulkResult>),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 404, description = "The kind is neither modules nor network", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "A field is of the wrong type, not 1 to 100 request ids, or an unknown action", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn bulk(
    State(state): State<AppState>,
    audited: Audited,
    Path(segment): Path<String>,
    ApiJson(body): ApiJson<BulkBody>,
) -> Result<Json<Vec<BulkResult>>> {
    let kind = kind(&segment)?;
    let reviewer = Reviewer::from_audited(&audited)?;
    if body.request_ids.is_empty() || body.request_ids.len() > 100 {
        return Err(Error::Validation(
            "request_ids must list 1 to 100 requests".into(),
        ));
    }
    // An unknown action is the request's fault, not each item's: refused whole, as one action is.
    if !matches!(body.action.as_str(), "approve" | "reject") {
        return Err(Error::Validation(format!(
            "unknown action {:?} (use approve or reject)",
            body.action
        )));
    }
    let mut results = Vec::new();
    for id in body.request_ids {
        match apply(
            &state,
            &reviewer,
            kind,
            &id,
            &body.action,
            body.reason.as_deref(),
        )
        .await
        {
            Ok(_) => results.push(BulkResult {
                id,
                ok: true,
                error: None,
            }),
            Err(Error::Internal(err)) => return Err(Error::Internal(err)),
            Err(err) => results.push(BulkResult {
                id,
                ok: false,
                error: Some(err.to_string()),
            }),
        }
    }
    Ok(Json(results))
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = access::Hosts)]
struct Hosts {
    allowed_hosts: Vec<String>,
    allowed_modules: Vec<String>,
}

#[utoipa::path(get, path = "/api/servers/{id}/allowed-hosts", tag = "access", operation_id = "access_hosts", params(("id" = String, Path, description = "The server id")), responses((status = 200, description = "The hosts and modules the server's tools may use", body = Hosts),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 404, description = "No such server", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn hosts(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(server_id): Path<String>,
) -> Result<Json<Hosts>> {
    auth.require(Role::Viewer)?;
    crate::servers::get(&state.db, &server_id).await?;
    Ok(Json(Hosts {
        allowed_hosts: super::allowed_hosts(&state.db, &server_id).await?,
        allowed_modules: super::allowed_modules(&state.db, &server_id).await?,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = access::HostCreate)]
#[serde(deny_unknown_fields)]
struct HostBody {
    /// A DNS name or an IP address, without scheme or path; may carry the port
    /// (`192.168.1.20:8123`, `[fd00::5]:1883`).
    host: String,
    /// 1 to 65535; null or absent for any port (a LAN host needs one).
    #[schema(minimum = 1, maximum = 65535)]
    #[serde(default, deserialize_with = "crate::integer::option_i64")]
    port: Option<i64>,
    /// A LAN host: exactly this host and port, which may be a private address. Absent: a
    /// private IP address is a LAN host, anything else a public one.
    #[serde(default)]
    lan: Option<bool>,
}

#[utoipa::path(post, path = "/api/servers/{id}/allowed-hosts", tag = "access", operation_id = "access_add_host", params(("id" = String, Path, description = "The server id")), request_body = HostBody, responses((status = 201, description = "The approved network request", body = RequestBody),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 404, description = "No such server", body = ErrorBody),
        (status = 409, description = "The same request exists already", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "A field is of the wrong type, or the host or port is not valid", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn add_host(
    State(state): State<AppState>,
    audited: Audited,
    Path(server_id): Path<String>,
    ApiJson(body): ApiJson<HostBody>,
) -> Result<(StatusCode, Json<RequestBody>)> {
    audited.auth.require(Role::Admin)?;
    let reviewer = Reviewer::from_audited(&audited)?;
    let added = super::allow_host(
        &state, &server_id, &body.host, body.port, body.lan, &reviewer,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(added.into())))
}

/// A tool's module or network request over REST: the twin of `mcpbox_request_module` and
/// `mcpbox_request_network_access`, with the same fields and the same domain function, so the
/// request is pending (or auto-approved by the policy) exactly as when an LLM asks.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = access::RequestCreate)]
#[serde(deny_unknown_fields)]
struct RequestCreate {
    /// `module` or `network`.
    #[schema(pattern = "^(module|network)$")]
    kind: String,
    /// Module requests: a standard-library module, or a PyPI distribution with an optional
    /// version specifier (`pyyaml`, `feedparser==6.0.11`).
    #[serde(default)]
    module_name: Option<String>,
    /// Network requests: a DNS name or an IP address, which may carry the port.
    #[serde(default)]
    host: Option<String>,
    /// Network requests: 1 to 65535; absent for any port (a LAN host needs one).
    #[schema(minimum = 1, maximum = 65535)]
    #[serde(default, deserialize_with = "crate::integer::option_i64")]
    port: Option<i64>,
    /// Network requests: a LAN host (exactly this host and port, which may be private).
    #[serde(default)]
    lan: Option<bool>,
    /// Why the tool needs it: 1 to 2000 characters, shown to the reviewer.
    justification: String,
}

#[utoipa::path(post, path = "/api/tools/{id}/access-requests", tag = "access", operation_id = "access_create_request", params(("id" = String, Path, description = "The tool id")), request_body = RequestCreate, responses((status = 201, description = "The request, pending review (or approved by the policy)", body = RequestBody),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 404, description = "No such tool", body = ErrorBody),
        (status = 409, description = "Already allowed, already pending, or rejected before for this tool", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "A field is missing or of the wrong type, or the module, distribution, host or port is not valid", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody),
        (status = 503, description = "PyPI could not be asked about a distribution now", body = ErrorBody)), security(("bearer" = [])))]
async fn create_request(
    State(state): State<AppState>,
    audited: Audited,
    Path(tool_id): Path<String>,
    ApiJson(body): ApiJson<RequestCreate>,
) -> Result<(StatusCode, Json<RequestBody>)> {
    audited.auth.require(Role::Admin)?;
    let (kind, target) = match (body.kind.as_str(), &body.module_name, &body.host) {
        ("module", Some(module), None) => (Kind::Module, module),
        ("network", None, Some(host)) => (Kind::Network, host),
        ("module", _, _) => {
            return Err(Error::Validation(
                "a module request names module_name and no host".into(),
            ));
        }
        ("network", _, _) => {
            return Err(Error::Validation(
                "a network request names host and no module_name".into(),
            ));
        }
        _ => {
            return Err(Error::Validation(
                "kind must be \"module\" or \"network\"".into(),
            ));
        }
    };
    let new = super::NewRequest {
        kind,
        tool_id: &tool_id,
        target,
        port: body.port,
        justification: &body.justification,
    };
    let created = super::request_scoped(&state, &audited.audit, new, body.lan).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// This module's routes in the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(queue, bulk, action, revoke, remove, hosts, add_host, create_request))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}

//! `GET /api/export` (the signed file, as a download) and `POST /api/import`.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use contract::ErrorBody;
use serde_json::Value;
use std::borrow::Cow;
use utoipa::openapi::schema::AnyOfBuilder;
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::format::ExportFile;
use super::{MAX_FILE_BYTES, Report};
use crate::activity::{self, Audited, NewEvent};
use crate::app::AppState;
use crate::auth::Role;
use crate::error::{Error, Result};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/export", get(export))
        .route("/api/import", post(import))
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(export, import))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}

/// `mcpbox-export-YYYYMMDD.json`.
pub fn file_name() -> String {
    format!("mcpbox-export-{}.json", chrono::Utc::now().format("%Y%m%d"))
}

/// The export as a download, with its activity row (an export carries every tool's code).
pub async fn download(state: &AppState, audit: &activity::Audit) -> Result<Response> {
    let made = super::export(state).await?;
    let body = serde_json::to_vec_pretty(&made.file).map_err(|e| Error::Internal(e.into()))?;
    let event = NewEvent::info(
        "export",
        format!(
            "export of {} servers and {} tools ({} passthrough tools left out)",
            made.file.servers.len(),
            made.tools(),
            made.skipped_passthrough
        ),
    );
    activity::record_now(state, audit, event).await?;
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", file_name()))
        .map_err(|e| Error::Internal(e.into()))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/export", tag = "transfer", operation_id = "export",
    description = "Every server with its Python tools (newest version), module and network requests and secret names (never values), as a signed v1.2 export file. Admin only.",
    responses((status = 200, description = "The export file (a download: Content-Disposition names it)", body = ExportFile, content_type = "application/json"),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)),
    security(("bearer" = [])))]
async fn export(State(state): State<AppState>, audited: Audited) -> Result<Response> {
    audited.auth.require(Role::Admin)?;
    download(&state, &audited.audit).await
}

#[utoipa::path(post, path = "/api/import", tag = "transfer", operation_id = "import",
    description = "Imports a signed export file: the file itself as the body, or {\"file\": <export>, \"source_key\": \"<the reference system's encryption key>\"} for a reference export. Tools arrive pending review, requests pending. At most 16 MiB. Admin only.",
    request_body(content = ImportRequest, content_type = "application/json", description = "The export file, or {file, source_key}"),
    responses((status = 200, description = "What was imported: counts, clashes, errors, warnings", body = Report),
        (status = 400, description = "Not JSON, not an export file, an unsupported version, or no valid signature", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 409, description = "Conflicts with the current state", body = ErrorBody),
        (status = 413, description = "The body is larger than 16 MiB", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "The file holds more than the limits, or a tool or request that is not acceptable", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)),
    security(("bearer" = [])))]
async fn import(
    State(state): State<AppState>,
    audited: Audited,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Report>> {
    audited.auth.require(Role::Admin)?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(Error::UnsupportedMediaType(
            "expected a JSON body with Content-Type: application/json",
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_FILE_BYTES)
        .await
        .map_err(|_| Error::PayloadTooLarge {
            limit: MAX_FILE_BYTES,
        })?;
    let (file, source_key) = unwrap_body(&bytes)?;
    let report = super::import_file(&state, &audited.audit, file, source_key.as_deref()).await?;
    Ok(Json(report))
}

/// The import body's schema: the file itself, or the file with the reference's key (what
/// [`unwrap_body`] reads: an object with `file` is the second).
struct ImportRequest;

/// `{"file": <export>, "source_key": "…"}`: a reference export and the reference system's
/// encryption-key string its signature verifies with.
#[derive(utoipa::ToSchema)]
#[schema(as = transfer::ImportWithKey)]
#[allow(dead_code)] // Read field by field in `unwrap_body` (its errors name the part at fault).
struct ImportWithKey {
    file: ExportFile,
    source_key: Option<String>,
}

impl utoipa::PartialSchema for ImportRequest {
    fn schema() -> RefOr<Schema> {
        // anyOf, not oneOf: an export file may carry unknown fields, so a wrapper matches both.
        AnyOfBuilder::new()
            .item(Ref::from_schema_name(ExportFile::name()))
            .item(Ref::from_schema_name(ImportWithKey::name()))
            .into()
    }
}

impl ToSchema for ImportRequest {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("transfer.ImportRequest")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((ExportFile::name().into_owned(), ExportFile::schema()));
        ExportFile::schemas(schemas);
        schemas.push((ImportWithKey::name().into_owned(), ImportWithKey::schema()));
        ImportWithKey::schemas(schemas);
    }
}

/// The file itself, or `{"file": …, "source_key": …}`.
fn unwrap_body(bytes: &[u8]) -> Result<(ExportFile, Option<String>)> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|err| Error::BadRequest(format!("the body is not valid JSON: {err}")))?;
    let (file, key) = match value {
        Value::Object(mut map) if map.contains_key("file") => {
            let key = match map.remove("source_key") {
                None | Some(Value::Null) => None,
                Some(Value::String(key)) => Some(key),
                Some(_) => {
                    return Err(Error::BadRequest("source_key must be a string".into()));
                }
            };
            (map.remove("file").unwrap_or(Value::Null), key)
        }
        other => (other, None),
    };
    let file = serde_json::from_value(file)
        .map_err(|err| Error::BadRequest(format!("the file is not an MCPbox export: {err}")))?;
    Ok((file, key))
}

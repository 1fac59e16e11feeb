//! The OpenAPI document of the admin API, served at `/api/openapi.json`.
//!
//! Generated from the code: every route handler carries a `#[utoipa::path]` with its method,
//! path, parameters and whether it needs a bearer token, and each domain module lists its
//! handlers (`openapi()`). A test sends every secured operation without a token and expects 401,
//! so the document also checks that no route was left unprotected.
//!
//! Not yet described: request and response body schemas (bodies are documented in the README).

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder};

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(serve))
}

/// Public: it describes routes, not data.
async fn serve() -> Json<OpenApi> {
    Json(document())
}

pub fn document() -> OpenApi {
    let info = InfoBuilder::new()
        .title("MCPbox admin API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Errors are {\"error\": {\"code\", \"message\"}}. Sign in with POST /auth/login and send the access token as a bearer token.",
        ))
        .build();
    let mut doc = OpenApiBuilder::new().info(info).build();
    for part in [
        crate::health::openapi(),
        crate::auth::openapi(),
        crate::users::openapi(),
        crate::servers::openapi(),
        crate::external::openapi(),
        crate::tools::openapi(),
        crate::approvals::openapi(),
        crate::access::openapi(),
        crate::secrets::openapi(),
        crate::execution::openapi(),
        crate::settings::openapi(),
        crate::ratelimit::api::openapi(),
        crate::cloudflare::openapi(),
        crate::activity::openapi(),
        crate::dashboard::openapi(),
        crate::alerts::openapi(),
        crate::transfer::openapi(),
    ] {
        doc.merge(part);
    }
    let mut components = doc.components.take().unwrap_or_default();
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    doc.components = Some(components);
    doc
}

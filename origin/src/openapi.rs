//! The OpenAPI document of the admin API, served at `/api/openapi.json`.
//!
//! Generated from the code: every route handler carries a `#[utoipa::path]` with its method,
//! path, parameters and whether it needs a bearer token, and each domain module lists its
//! handlers (`openapi()`). A test sends every secured operation without a token and expects 401,
//! so the document also checks that no route was left unprotected.
//!
//! Bodies are described by the very types the handlers deserialise and serialise (`ToSchema`),
//! so the document cannot drift from what is accepted. Errors are one schema, `ErrorBody`; each
//! handler lists the statuses it can answer with through the markers below (`E404`, `JsonBody`…),
//! and the 429 of the rate-limit guard, which sits in front of every `/api` and `/auth` route, is
//! added here once.

use axum::routing::get;
use axum::{Json, Router};
use std::collections::BTreeMap;

use contract::error::ErrorBody;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, ResponseBuilder,
};
use utoipa::{IntoResponses, PartialSchema, ToSchema};

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(serve))
}

/// Public: it describes routes, not data.
async fn serve() -> Json<serde_json::Value> {
    Json(document_json())
}

/// The document as served. utoipa 5 writes a link's fields in snake case (`operation_id`);
/// OpenAPI spells them `operationId`, `operationRef`, `requestBody`, so they are renamed here.
pub fn document_json() -> serde_json::Value {
    let mut doc = serde_json::to_value(document()).unwrap_or_default();
    let links = doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses")?.as_object_mut())
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links")?.as_object_mut())
        .flat_map(|links| links.values_mut())
        .filter_map(serde_json::Value::as_object_mut);
    for link in links {
        for (snake, camel) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(value) = link.remove(snake) {
                link.insert(camel.to_owned(), value);
            }
        }
    }
    doc
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
        crate::prompts::openapi(),
        crate::approvals::openapi(),
        crate::access::openapi(),
        crate::packages::openapi(),
        crate::secrets::openapi(),
        crate::execution::openapi(),
        crate::settings::openapi(),
        crate::ratelimit::api::openapi(),
        crate::cloudflare::openapi(),
        crate::activity::openapi(),
        crate::dashboard::openapi(),
        crate::alerts::openapi(),
        crate::transfer::openapi(),
        crate::mcp_keys::openapi(),
    ] {
        doc.merge(part);
    }
    add_rate_limit_response(&mut doc);
    add_links(&mut doc);
    let mut components = doc.components.take().unwrap_or_default();
    let mut schemas = vec![(ErrorBody::name().into_owned(), ErrorBody::schema())];
    ErrorBody::schemas(&mut schemas);
    components.schemas.extend(schemas);
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

/// A linked operation's parameters: (name, runtime expression).
type LinkParameters = &'static [(&'static str, &'static str)];

/// What a created resource leads to: OpenAPI links, so clients and stateful testers
/// (schemathesis) can go from a create to the operations on what it created. Each row: the
/// operation, its success status, the linked operation, and the linked operation's parameters
/// as runtime expressions.
const LINKS: &[(&str, &str, &str, LinkParameters)] = &[
    (
        "servers_create",
        "201",
        "servers_show",
        &[("id", "$response.body#/id")],
    ),
    (
        "servers_create",
        "201",
        "servers_update",
        &[("id", "$response.body#/id")],
    ),
    (
        "servers_create",
        "201",
        "servers_remove",
        &[("id", "$response.body#/id")],
    ),
    (
        "servers_create",
        "201",
        "servers_start",
        &[("id", "$response.body#/id")],
    ),
    (
        "servers_create",
        "201",
        "servers_stop",
        &[("id", "$response.body#/id")],
    ),
    (
        "servers_create",
        "201",
        "tools_create",
        &[("id", "$response.body#/id")],
    ),
    (
        "servers_create",
        "201",
        "tools_list",
        &[("id", "$response.body#/id")],
    ),
    (
        "servers_create",
        "201",
        "secrets_create",
        &[("id", "$response.body#/id")],
    ),
    (
        "servers_create",
        "201",
        "secrets_list",
        &[("id", "$response.body#/id")],
    ),
    (
        "servers_create",
        "201",
        "execution_server_logs",
        &[("id", "$response.body#/id")],
    ),
    (
        "tools_create",
        "201",
        "tools_show",
        &[("id", "$response.body#/id")],
    ),
    (
        "tools_create",
        "201",
        "tools_update",
        &[("id", "$response.body#/id")],
    ),
    (
        "tools_create",
        "201",
        "tools_remove",
        &[("id", "$response.body#/id")],
    ),
    (
        "tools_create",
        "201",
        "tools_versions",
        &[("id", "$response.body#/id")],
    ),
    (
        "tools_create",
        "201",
        "tools_show_version",
        &[
            ("id", "$response.body#/id"),
            ("version", "$response.body#/current_version"),
        ],
    ),
    (
        "tools_create",
        "201",
        "tools_compare",
        &[("id", "$response.body#/id")],
    ),
    (
        "tools_create",
        "201",
        "tools_rollback",
        &[("id", "$response.body#/id")],
    ),
    (
        "tools_create",
        "201",
        "approvals_action",
        &[("id", "$response.body#/id")],
    ),
    (
        "tools_create",
        "201",
        "approvals_revoke",
        &[("id", "$response.body#/id")],
    ),
    (
        "tools_create",
        "201",
        "execution_tool_logs",
        &[("id", "$response.body#/id")],
    ),
    (
        "secrets_create",
        "201",
        "secrets_set",
        &[("id", "$request.path.id"), ("key", "$response.body#/key")],
    ),
    (
        "secrets_create",
        "201",
        "secrets_remove",
        &[("id", "$request.path.id"), ("key", "$response.body#/key")],
    ),
    (
        "users_create",
        "201",
        "users_show",
        &[("id", "$response.body#/id")],
    ),
    (
        "users_create",
        "201",
        "users_update",
        &[("id", "$response.body#/id")],
    ),
    (
        "execution_test_code",
        "200",
        "execution_one_log",
        &[("id", "$response.body#/log_id")],
    ),
    (
        "mcp_keys_create",
        "201",
        "mcp_keys_revoke",
        &[("id", "$response.body#/id")],
    ),
];

fn add_links(doc: &mut OpenApi) {
    for (from, status, to, parameters) in LINKS {
        let Some(operation) = operation_mut(doc, from) else {
            continue;
        };
        let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status) else {
            continue;
        };
        let link = parameters
            .iter()
            .fold(
                LinkBuilder::new().operation_id(*to),
                |link, (name, value)| link.parameter(*name, *value),
            )
            .build();
        response.links.insert((*to).to_owned(), RefOr::T(link));
    }
}

fn operation_mut<'a>(doc: &'a mut OpenApi, id: &str) -> Option<&'a mut Operation> {
    doc.paths.paths.values_mut().find_map(|item| {
        [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        .find(|operation| operation.operation_id.as_deref() == Some(id))
    })
}

/// The rate-limit guard (`ratelimit::guard`) answers 429 before any `/api` or `/auth` handler.
fn add_rate_limit_response(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        if !(path.starts_with("/api/") || path.starts_with("/auth/")) {
            continue;
        }
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            operation
                .responses
                .responses
                .entry("429".to_owned())
                .or_insert_with(|| error_response(TOO_MANY));
        }
    }
}

const TOO_MANY: &str = "Rate limit reached; `Retry-After` says when to try again";

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

/// Declares a marker type per error status a handler can answer with; `responses(…, E404)`.
macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident => [$(($status:literal, $description:literal)),+];)+) => {$(
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
                BTreeMap::from([$(($status.to_owned(), error_response($description))),+])
            }
        }
    )+};
}

error_responses! {
    /// A malformed query string or path.
    E400 => [("400", "Malformed request (query string, path)")];
    /// No token, or one that is no longer valid.
    E401 => [("401", "No valid bearer token")];
    /// A valid token whose role may not do this.
    E403 => [("403", "The account's role may not do this")];
    E404 => [("404", "Not found")];
    E409 => [("409", "Conflicts with the current state (e.g. a duplicate name)")];
    /// A field that is well-formed but not acceptable.
    E422 => [("422", "A value is not acceptable")];
    /// A dependency (the database, the sandbox) is not available.
    E503 => [("503", "A dependency is not available right now")];
    /// Every error `ApiJson` (`crate::error`) can answer with while reading a JSON body.
    JsonBody => [
        ("400", "The body is not valid JSON"),
        ("413", "The body is larger than the limit"),
        ("415", "The body is not sent as application/json"),
        ("422", "The body does not have the expected fields, or a value is not acceptable")
    ];
    /// Signed in but without the role: an admin-only route.
    Admin => [
        ("401", "No valid bearer token"),
        ("403", "The account's role may not do this")
    ];
}

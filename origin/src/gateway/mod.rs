//! The MCP gateway: `/mcp` on the local listener, served by rmcp's Streamable HTTP server with
//! this hand-written handler (no macros: the tool list is read from storage on every request, so
//! nothing is cached past a change).
//!
//! `initialize`/`server/discover`, `ping`, `tools/list` of the approved, enabled tools of running
//! servers (paginated; Python and passthrough tools alike), `tools/call` through `execution::run`
//! (the one path into the sandbox and to external sources, so approval is checked at call time
//! and every call is logged), the `mcpbox_*` management tools (`management`), `prompts/*` and
//! `resources/*` of approved prompts and resources (`catalog`), and list_changed notifications
//! on both protocol revisions (the 2025-11-25 session GET
//! stream and the 2026-07-28 `subscriptions/listen`). The tunnel listener for remote clients is
//! `tunnel`. `/servers/{name}/mcp` serves one server's tools under their own names (`scoped`).

mod ask;
mod catalog;
mod headers;
pub mod keys;
pub mod management;
mod progress;
pub mod scoped;
pub mod sessions;
pub mod tunnel;
mod visible;

use std::sync::Arc;

use axum::Router;
use opentelemetry::trace::TraceContextExt as _;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    ContentBlock, GetPromptRequestParams, GetPromptResponse, Implementation, InitializeResult,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    MetaObject, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ServerCapabilities, SubscriptionFilter,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::{Instrument as _, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::activity::Audit;
use crate::app::AppState;
use crate::error::Error;
use crate::execution;
use crate::tools;

use visible::visible_tools;
pub use visible::{VisibleSet, watch_changes};

/// Who may reach `/mcp`: `Host` and `Origin` allowlists (DNS-rebinding and cross-site defence).
/// `None` turns a check off (the tunnel listener, where the service token is the guard).
#[derive(Debug, Clone)]
pub struct McpAccess {
    /// Host names or `host:port` authorities accepted in the `Host` header.
    pub allowed_hosts: Option<Vec<String>>,
    /// Browser origins accepted in an `Origin` header (requests without one pass: they do not
    /// come from a web page).
    pub allowed_origins: Option<Vec<String>>,
}

impl Default for McpAccess {
    /// Loopback only, which is what a default `mcpbox serve` on 127.0.0.1 is reachable as.
    fn default() -> Self {
        McpAccess {
            allowed_hosts: Some(vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]),
            allowed_origins: Some(vec![
                "http://localhost:*".into(),
                "http://127.0.0.1:*".into(),
                "http://[::1]:*".into(),
            ]),
        }
    }
}

/// Who is calling, set by the listener's guard into the HTTP request's extensions. Requests on
/// the local listener without a client key carry none and are `Local`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Local,
    /// On the local listener with a valid client key (`keys`): local rights, named in the log.
    Key {
        name: String,
    },
    /// Through the Worker and the tunnel listener; `None`: not signed in.
    Remote {
        email: Option<String>,
    },
}

impl Caller {
    fn of(context: &RequestContext<RoleServer>) -> Caller {
        context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>().cloned())
            .unwrap_or(Caller::Local)
    }

    /// Whose execution-log rows this caller may read: all for a local caller (keyed or not),
    /// only its own for a remote one (an anonymous remote caller has made no calls, and reads none).
    pub fn log_scope(&self) -> Option<String> {
        match self {
            // A keyed client is a local one that says who it is: it reads what local reads.
            Caller::Local | Caller::Key { .. } => None,
            Caller::Remote { .. } => Some(self.actor()),
        }
    }

    /// The actor recorded in execution logs.
    fn actor(&self) -> String {
        match self {
            Caller::Local => "mcp:local".to_owned(),
            Caller::Key { name } => format!("mcp:key:{name}"),
            Caller::Remote { email: Some(email) } => email.clone(),
            Caller::Remote { email: None } => "mcp:anonymous".to_owned(),
        }
    }
}

/// The `/mcp` and `/servers/{name}/mcp` routes, sharing `state` with the rest of the app.
/// `changes` comes from `watch_changes`, started once and shared by both listeners.
pub fn router(
    state: AppState,
    access: &McpAccess,
    changes: watch::Receiver<VisibleSet>,
) -> Router<AppState> {
    let handler = Gateway {
        state: state.clone(),
        changes,
        scope: None,
    };
    let mut config = StreamableHttpServerConfig::default();
    config = match &access.allowed_hosts {
        Some(hosts) => config.with_allowed_hosts(hosts.clone()),
        None => config.disable_allowed_hosts(),
    };
    config = match &access.allowed_origins {
        Some(origins) => config
            .with_allowed_origins(origins.clone())
            .enforce_origin_validation(),
        None => config.disable_allowed_origins(),
    };
    // The documented body limit, not rmcp's 4 MiB default.
    config = config.with_max_request_body_bytes(crate::http::MAX_BODY_BYTES);
    // Idle sessions are closed by `sessions` on the client's inactivity; rmcp's own timer is
    // reset by what the server sends (every list_changed), so it is off.
    let mut manager = LocalSessionManager::default();
    manager.session_config.keep_alive = None;
    let manager = Arc::new(manager);
    let sessions = state.mcp_sessions.listener(&manager);
    let scoped = scoped::router(handler.clone(), manager.clone(), config.clone());
    let service = StreamableHttpService::new(move || Ok(handler.clone()), manager, config);
    Router::new()
        .route_service("/mcp", service)
        .merge(scoped)
        .layer(axum::middleware::from_fn_with_state(
            sessions,
            sessions::guard,
        ))
        .layer(axum::middleware::from_fn(session_deleted_is_no_content))
}

/// rmcp answers a session DELETE with 202, but the session is already gone by then; clients
/// (the Python SDK among them) expect 200 or 204 and warn otherwise.
async fn session_deleted_is_no_content(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let delete = request.method() == axum::http::Method::DELETE;
    let mut response = next.run(request).await;
    if delete && response.status() == axum::http::StatusCode::ACCEPTED {
        *response.status_mut() = axum::http::StatusCode::NO_CONTENT;
    }
    response
}

/// How soon a closed session's list_changed task notices and lets go of the session.
const SESSION_GONE_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Clone)]
struct Gateway {
    state: AppState,
    /// Changes whenever the set of visible tools (names, descriptions, schemas) changes.
    changes: watch::Receiver<VisibleSet>,
    /// `Some` on `/servers/{name}/mcp`: that server's tools only, under their own names.
    scope: Option<scoped::ServerScope>,
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> InitializeResult {
        InitializeResult::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_completions()
                .enable_prompts()
                .enable_prompts_list_changed()
                .enable_resources()
                .enable_resources_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("mcpbox", env!("CARGO_PKG_VERSION")))
        .with_instructions(match &self.scope {
            None => "MCPbox: the tools here are Python tools that a person approved. Tool names \
                     are {server}__{tool}."
                .to_owned(),
            Some(scope) => format!(
                "MCPbox: the tools of its server {:?}, Python tools that a person approved, \
                 under their own names.",
                scope.name
            ),
        })
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let standard_headers = headers::standard_headers(&context);
        let cursor = request.and_then(|r| r.cursor);
        let server = self.scope.as_ref().map(|scope| scope.name.as_str());
        let page = visible_tools(&self.state.db, server, cursor.as_deref())
            .await
            .map_err(to_protocol_error)?;
        let next_cursor = page.next_cursor;
        // The management tools are always there, at the head of the first page; never on a
        // per-server endpoint (`scoped`).
        let mut listed = if cursor.is_none() && self.scope.is_none() {
            management::tools()
        } else {
            Vec::new()
        };
        let stored = page.tools.into_iter().map(|t| t.into_mcp());
        if standard_headers {
            // 2026-07-28: only annotations rmcp checks are listed (`headers`).
            listed = listed
                .into_iter()
                .map(headers::annotate_management)
                .collect();
            listed.extend(stored.map(headers::unannotated));
        } else {
            listed.extend(stored);
        }
        let mut result = ListToolsResult::with_all_items(listed)
            // Never cached past a change: clients that ignore list_changed must still see
            // new tools on their next tools/list.
            .with_ttl_ms(0);
        result.next_cursor = next_cursor;
        Ok(result)
    }

    /// What rmcp checks a 2026-07-28 `tools/call`'s `Mcp-Param-*` headers against: the
    /// management tools' schemas, as listed; a stored tool is listed unannotated (`headers`).
    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        if self.scope.is_some() || !name.starts_with(management::PREFIX) {
            return None;
        }
        management::tools()
            .into_iter()
            .find(|tool| tool.name == name)
            .map(headers::annotate_management)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let span = call_span(&request, &context, self.scope.as_ref());
        self.call_tool_in_span(request, context)
            .instrument(span)
            .await
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        // 2025-11-25 sessions: list_changed goes out on the session's GET stream. The task holds
        // the peer (and with it the client's `initialize` params), so it must end with the
        // session, not at the next change: it looks every few seconds whether the session's
        // transport is gone.
        let peer = context.peer;
        let mut changes = self.changes.clone();
        let scope = self.scope.clone();
        let mut last = scoped::start(&mut changes, scope.as_ref());
        let watcher = self.state.mcp_sessions.watcher();
        tokio::spawn(async move {
            let _counted = watcher;
            let mut check = tokio::time::interval(SESSION_GONE_CHECK);
            loop {
                tokio::select! {
                    changed = scoped::changed(&mut changes, scope.as_ref(), &mut last) => {
                        if !changed || catalog::notify_session(&peer).await.is_err() {
                            return;
                        }
                    }
                    _ = check.tick() => {
                        if peer.is_transport_closed() {
                            return;
                        }
                    }
                }
            }
        });
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        // Always Some: `None` would make `subscriptions/listen` "method not found" for a client
        // that asks for categories we do not have; it gets an acknowledged, narrower filter.
        Some(catalog::accepted_filter(requested))
    }

    // Completions: rmcp (since 3.11) refuses a method whose capability is not declared, and
    // today's clients got an empty completion before, so it is declared and always empty.
    async fn complete(
        &self,
        _request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        Ok(CompleteResult::default())
    }

    // Prompts and resources: `catalog`.
    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let cursor = request.and_then(|r| r.cursor);
        catalog::list_prompts(&self.state, self.scope_name(), cursor.as_deref()).await
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        catalog::get_prompt(
            &self.state,
            self.scope_name(),
            &request.name,
            request.arguments,
        )
        .await
        .map(Into::into)
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let cursor = request.and_then(|r| r.cursor);
        catalog::list_resources(&self.state, self.scope_name(), cursor.as_deref()).await
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let cursor = request.and_then(|r| r.cursor);
        catalog::list_resource_templates(&self.state, self.scope_name(), cursor.as_deref()).await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let actor = Caller::of(&context).actor();
        catalog::read_resource(&self.state, self.scope_name(), &request.uri, &actor)
            .await
            .map(Into::into)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        // 2026-07-28: one open `subscriptions/listen` request per interested client.
        let mut changes = self.changes.clone();
        let mut last = scoped::start(&mut changes, self.scope.as_ref());
        loop {
            tokio::select! {
                _ = context.cancelled() => return Ok(()),
                changed = scoped::changed(&mut changes, self.scope.as_ref(), &mut last) => {
                    if !changed || catalog::notify_listener(&context).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

impl Gateway {
    /// The server a per-server endpoint serves (`None` on `/mcp`).
    fn scope_name(&self) -> Option<&str> {
        self.scope.as_ref().map(|scope| scope.name.as_str())
    }

    /// `tools/call` inside its span (`call_span`).
    async fn call_tool_in_span(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        // `mcpbox_call_tool` is the call it names, from here on down the same path. It is a
        // management tool, so a per-server endpoint (which serves none) does not know it.
        let request = match &self.scope {
            Some(_) => request,
            None => match management::forwarded(request) {
                Ok(request) => request,
                Err(err) => return Ok(refusal(&err).into()),
            },
        };
        let caller = Caller::of(&context);
        let actor = caller.actor();
        if self.scope.is_none() && request.name.starts_with(management::PREFIX) {
            let audit = Audit {
                actor,
                request_id: context
                    .extensions
                    .get::<axum::http::request::Parts>()
                    .and_then(crate::activity::request_id),
            };
            let arguments = request.arguments.unwrap_or_default();
            return match management::call(&self.state, &caller, &audit, &request.name, &arguments)
                .await
            {
                Ok(Some(value)) => {
                    let mut result =
                        CallToolResult::success(vec![ContentBlock::text(value.to_string())]);
                    result.structured_content = Some(value);
                    Ok(result.into())
                }
                Ok(None) => Err(McpError::invalid_params(
                    format!(
                        "unknown tool {:?}; call tools/list to see the tools",
                        request.name
                    ),
                    None,
                )),
                Err(err) => Ok(refusal(&err).into()),
            };
        }
        let tool_id = match &self.scope {
            None => visible::tool_id(&self.state.db, &request.name).await,
            Some(scope) => visible::tool_id_in(&self.state.db, &scope.name, &request.name).await,
        };
        let Some(tool_id) = tool_id.map_err(to_protocol_error)? else {
            return Err(McpError::invalid_params(
                format!(
                    "unknown tool {:?}; call tools/list to see the tools",
                    request.name
                ),
                None,
            ));
        };
        let arguments = Value::Object(request.arguments.clone().unwrap_or_default());
        // The call-time check: approved, hash intact, enabled, server running. A refusal is a
        // tool error the model can read, not a protocol error.
        let approved = match tools::runnable(&self.state.db, &tool_id).await {
            Ok(approved) => approved,
            Err(err) => {
                // Logged like any call (the log holds every attempt, refused ones too).
                if let Err(log_err) =
                    execution::log_refusal(&self.state, &tool_id, &arguments, &actor, &err).await
                {
                    tracing::warn!(error = %log_err, "could not log a refused call");
                }
                return Ok(refusal(&err).into());
            }
        };
        let forwarder = context
            .meta
            .get_progress_token()
            .map(|token| progress::Forwarder::start(context.peer.clone(), token));
        // Round by round when the tool asks back (`ask`); one round otherwise.
        let run = ask::call(
            &self.state,
            &approved,
            arguments,
            &actor,
            &request,
            &context,
            forwarder.as_ref().map(|f| f.sender.clone()),
        );
        // The client's `notifications/cancelled` ends the run: dropping it kills the worker
        // and logs the call as cancelled.
        let ran = tokio::select! {
            ran = run => ran,
            () = context.ct.cancelled() => {
                return Err(McpError::invalid_request("the call was cancelled", None));
            }
        };
        if let Some(forwarder) = forwarder {
            forwarder.finish().await;
        }
        let outcome = match ran {
            Ok(ask::Ended::Ran(outcome)) => *outcome,
            Ok(ask::Ended::Ask(input_required)) => return Ok(input_required.into()),
            Ok(ask::Ended::Stopped(message)) => return Ok(ask::stopped(message)),
            Ok(ask::Ended::MissingCapability(capability)) => {
                return Err(ask::missing_capability(&capability));
            }
            Err(err @ Error::Validation(_)) => return Err(ask::invalid(err)),
            Err(err) => return Ok(refusal(&err).into()),
        };
        Ok(tool_result(outcome, approved.output_schema.as_deref()).into())
    }
}

/// The MCP server span of a `tools/call` (OTel MCP semantic conventions): a child of the HTTP
/// request's span, or of the `traceparent` in the request's `_meta` (SEP-414) when it has one:
/// that names the client's own span of this MCP request, which the transport's header may not
/// (a proxy's hop, or a session's connection). The HTTP request's span is then linked.
fn call_span(
    request: &CallToolRequestParams,
    context: &RequestContext<RoleServer>,
    scope: Option<&scoped::ServerScope>,
) -> Span {
    let name = request.name.as_ref();
    let server = match scope {
        Some(scope) => scope.name.as_str(),
        None => name.split_once("__").map_or("mcpbox", |(server, _)| server),
    };
    let request_span = context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<crate::telemetry::RequestSpan>())
        .map(|span| span.0.clone());
    let session = context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.headers.get("mcp-session-id"))
        .and_then(|value| value.to_str().ok());
    let span = tracing::info_span!(
        parent: request_span.as_ref().and_then(Span::id),
        "tools/call",
        otel.name = %format!("tools/call {name}"),
        otel.kind = "server",
        mcp.method.name = "tools/call",
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = name,
        mcpbox.server = server,
        mcp.session.id = session,
        jsonrpc.request.id = %context.id,
    );
    if let Some(parent) = crate::telemetry::from_meta(&context.meta.0.0) {
        if let Some(request_span) = &request_span {
            span.add_link(request_span.context().span().span_context().clone());
        }
        let _ = span.set_parent(parent);
    }
    span
}

/// A domain refusal (not approved, disabled, sandbox down…) as a tool error with its message.
fn refusal(err: &Error) -> CallToolResult {
    let message = match err {
        // Internals stay in the log, as on the REST API.
        Error::Internal(_) => {
            tracing::error!(error = %err, "MCP tool call failed");
            "MCPbox failed internally; the details are in its log".to_owned()
        }
        _ => err.to_string(),
    };
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// The result as JSON text (and `structuredContent` when it is an object), or the tool's error
/// with its kind and line; stdout, duration and the log id in `_meta`. With an output schema,
/// `structuredContent` is the value as the schema describes it (`tools::structured`) and a
/// value that does not match is a tool error saying what did not.
fn tool_result(outcome: execution::Outcome, output_schema: Option<&str>) -> CallToolResult {
    let mut result = if let Some(remote) = outcome.remote {
        // A passthrough tool: the external source's content blocks as it sent them.
        let mut result = CallToolResult::success(remote.content);
        result.structured_content = remote.structured_content;
        result.is_error = Some(!outcome.ok);
        result
    } else if outcome.ok
        && let Some(schema) = output_schema
    {
        let value = outcome.result.unwrap_or(Value::Null);
        match tools::structured(schema, value.clone()) {
            Ok(structured) => {
                // The text block for clients that predate structured content.
                let content = execution::mcp_blocks(&value, &outcome.content)
                    .unwrap_or_else(|| vec![ContentBlock::text(value.to_string())]);
                let mut result = CallToolResult::success(content);
                result.structured_content = Some(structured);
                result
            }
            Err(mismatch) => CallToolResult::error(vec![ContentBlock::text(mismatch)]),
        }
    } else if outcome.ok {
        let value = outcome.result.unwrap_or(Value::Null);
        if let Some(blocks) = execution::mcp_blocks(&value, &outcome.content) {
            // Images, audio, resources: their own blocks (the markers stay in the log).
            CallToolResult::success(blocks)
        } else {
            let mut result = CallToolResult::success(vec![ContentBlock::text(value.to_string())]);
            if value.is_object() {
                result.structured_content = Some(value);
            }
            result
        }
    } else {
        let message = match &outcome.error {
            Some(error) => error.describe(),
            None => "the tool failed without a message".to_owned(),
        };
        let message = with_output(message, &outcome.stdout);
        let mut result = CallToolResult::error(vec![ContentBlock::text(message)]);
        // The same error as data, for clients that read it rather than the text.
        result.structured_content = outcome
            .error
            .as_ref()
            .and_then(|error| serde_json::to_value(error).ok())
            .map(|error| json!({ "error": error }));
        result
    };
    let meta = json!({
        "mcpbox/stdout": outcome.stdout,
        "mcpbox/duration_ms": outcome.duration_ms,
        "mcpbox/version": outcome.version,
        "mcpbox/log_id": outcome.log_id,
    });
    if let Value::Object(meta) = meta {
        result.meta = Some(MetaObject(meta));
    }
    result
}

/// Most characters of a failed run's output quoted in its error text (all of it is in `_meta`).
const ERROR_OUTPUT_CHARS: usize = 2000;

/// A failed run's error text followed by what it printed (the end of it, where it failed).
fn with_output(message: String, stdout: &str) -> String {
    if stdout.trim().is_empty() {
        return message;
    }
    let count = stdout.chars().count();
    let tail: String = stdout
        .chars()
        .skip(count.saturating_sub(ERROR_OUTPUT_CHARS))
        .collect();
    let cut = if count > ERROR_OUTPUT_CHARS {
        "…"
    } else {
        ""
    };
    format!("{message}\nOutput so far:\n{cut}{}", tail.trim_end())
}

/// A storage failure while serving a protocol request: logged, and reported without internals.
fn to_protocol_error(err: Error) -> McpError {
    tracing::error!(error = %err, "MCP request failed");
    McpError::internal_error("MCPbox could not read its tools; try again", None)
}

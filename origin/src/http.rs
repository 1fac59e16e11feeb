//! HTTP hygiene applied to every route, in one place: security headers, a JSON error body for
//! every error response, body size limit, request timeout, request ids and access logging.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::MatchedPath;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, OnResponse, TraceLayer};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::error::Error;

/// Largest request body accepted (the reference caps /mcp at 1 MB too).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A request whose response has not started within this gets 408. Streams are not cut by it
/// (MCP over SSE, `/api/activity/stream`): the limit ends when the response's head is sent.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Routes that run a tool to completion before they answer (test runs, REST and UI). They get
/// the longest tool timeout plus the dispatch's margin and a little more, so no front cuts a
/// run shorter than the tool's own timeout; the run itself is bounded by that tool's timeout
/// plus `dispatch::EXECUTE_MARGIN` (the sandbox kills the worker at the tool's timeout).
const LONG_CALL_ROUTES: &[&str] = &["/api/tools/test-code", "/ui/tools/{id}/test"];

/// The limit of [`LONG_CALL_ROUTES`].
pub const LONG_CALL_TIMEOUT: Duration = Duration::from_millis(
    contract::sandbox::Limits::MAX.timeout_ms
        + crate::dispatch::EXECUTE_MARGIN.as_millis() as u64
        + 5_000,
);

/// The time a request on `route` (its template) may take before its response starts.
pub fn request_timeout(route: Option<&str>) -> Duration {
    match route {
        Some(route) if LONG_CALL_ROUTES.contains(&route) => LONG_CALL_TIMEOUT,
        _ => REQUEST_TIMEOUT,
    }
}

/// 408 when the handler has not answered within the route's [`request_timeout`]. Runs after
/// routing (`Router::layer`), so the route template is known.
async fn timeout_by_route(request: Request, next: Next) -> Response {
    let limit = request_timeout(
        request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
    }
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps the application's routes in the shared layers (outermost first: request id, trace,
/// propagate id, security headers, JSON errors, request counter, timeout, body limit).
pub fn with_layers<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    requests: &crate::metrics::HttpRequests,
) -> Router<S> {
    router
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(timeout_by_route))
        // Outside the timeout, so a 408 is counted as what the client got; `Router::layer` runs
        // after routing, so the route template is known.
        .layer(middleware::from_fn_with_state(
            requests.clone(),
            crate::metrics::count_http,
        ))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(security_headers))
        // Inside the request span: hands it to handlers that run elsewhere (rmcp's tasks).
        .layer(middleware::from_fn(keep_request_span))
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(|response: &Response, latency: Duration, span: &Span| {
                    let status = response.status();
                    span.record("http.response.status_code", status.as_u16());
                    if status.is_server_error() {
                        span.record("otel.status_code", "error");
                    }
                    DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .on_response(response, latency, span);
                }),
        )
        .layer(SetRequestIdLayer::new(
            X_REQUEST_ID.clone(),
            MakeRequestUuid,
        ))
}

/// The request's span: the log's fields (method, path, request id) and, for traces, the HTTP
/// semantic-convention attributes and the parent from the `traceparent` header.
fn request_span(request: &Request) -> Span {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    // Route templates, never raw paths, in the span name (bounded cardinality).
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let method = request.method().as_str();
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %id,
        http.request.method = method,
        http.route = route,
        url.path = request.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    let parent = crate::telemetry::from_headers(request.headers());
    // Only a valid remote parent: otherwise the span stays a root.
    if opentelemetry::trace::TraceContextExt::has_active_span(&parent) {
        let _ = span.set_parent(parent);
    }
    span
}

async fn keep_request_span(mut request: Request, next: Next) -> Response {
    request
        .extensions_mut()
        .insert(crate::telemetry::RequestSpan(Span::current()));
    next.run(request).await
}

/// Content-Security-Policy for HTML: our own scripts, styles and images only; no inline script;
/// no framing; forms post only to us.
const CSP_HTML: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// Anything else (JSON, text) is never a document: nothing may load from it or frame it.
const CSP_OTHER: &str = "default-src 'none'; frame-ancestors 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    // HSTS only when the client reached us over https (through a proxy that says so): sending it
    // on plain-http LAN access would be ignored at best.
    let over_https = request
        .headers()
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
    let mut response = next.run(request).await;
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"text/html"));
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    };
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(
        headers,
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
    );
    set(
        headers,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        headers,
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    // Responses carry tokens and private data; static assets may opt in to caching later.
    set(headers, header::CACHE_CONTROL, "no-store");
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        if is_html { CSP_HTML } else { CSP_OTHER },
    );
    if over_https {
        set(
            headers,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
    response
}

/// Gives error responses produced outside our handlers (unknown route, wrong method, timeout,
/// layer rejections) the same `{"error": {"code", "message"}}` body as ours.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    // axum's own rejections (a path segment that is not a number, not UTF-8) are text/plain.
    let plain_or_none = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|value| value.as_bytes().starts_with(b"text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain_or_none {
        return response;
    }
    // A plain-text explanation from a layer or from rmcp (e.g. "Not Found: Session not found")
    // is kept as the message; only an empty body gets a generic one.
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty());
    let response = Response::from_parts(parts, Body::empty());
    let ours = [
        StatusCode::METHOD_NOT_ALLOWED,
        StatusCode::REQUEST_TIMEOUT,
        StatusCode::PAYLOAD_TOO_LARGE,
    ];
    if let Some(text) = text.filter(|_| !ours.contains(&status)) {
        let code = match status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::NOT_ACCEPTABLE => "not_acceptable",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => "http_error",
        };
        return plain_error(status, code, &text);
    }
    let error = match status {
        StatusCode::NOT_FOUND => Error::NotFound("there is nothing at this path".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => {
            let (parts, _) = response.into_parts();
            let mut replaced = plain_error(
                status,
                "method_not_allowed",
                "this path does not accept that method",
            );
            if let Some(allow) = parts.headers.get(header::ALLOW) {
                replaced.headers_mut().insert(header::ALLOW, allow.clone());
            }
            return replaced;
        }
        StatusCode::REQUEST_TIMEOUT => {
            return plain_error(
                status,
                "timeout",
                "the request took too long and was stopped",
            );
        }
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        },
        other => {
            let reason = other.canonical_reason().unwrap_or("error").to_owned();
            return plain_error(other, "http_error", &reason);
        }
    };
    error.into_response()
}

fn plain_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::to_vec(&contract::ErrorBody::new(code, message)).unwrap_or_default();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| status.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_test_runs_outlast_the_request_timeout_and_they_outlast_any_tool() {
        assert_eq!(request_timeout(None), REQUEST_TIMEOUT);
        for route in ["/api/tools/{id}", "/mcp", "/api/tools/validate-code"] {
            assert_eq!(request_timeout(Some(route)), REQUEST_TIMEOUT, "{route}");
        }
        let longest_run = Duration::from_millis(contract::sandbox::Limits::MAX.timeout_ms)
            + crate::dispatch::EXECUTE_MARGIN;
        for route in LONG_CALL_ROUTES {
            assert!(request_timeout(Some(route)) > longest_run, "{route}");
        }
    }
}

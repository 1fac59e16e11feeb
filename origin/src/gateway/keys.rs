//! The key check of the local listener's `/mcp` (`mcp_keys`): `Authorization: Bearer <key>`.
//!
//! * Keys required (a non-loopback bind address, or `--mcp-require-key`): a request without a
//!   valid key is refused with 401.
//! * Not required (loopback): a request without `Authorization` is the local caller, as before;
//!   one that sends a bearer must send a valid key (a wrong key is never silently "local").
//!
//! A valid key makes the request `Caller::Key { name }`: trusted like the local caller (every
//! management tool, every log row readable), recorded as `mcp:key:{name}`. The tunnel listener
//! does not go through this; its own guard (`tunnel`) stays the only one there.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Caller;
use crate::app::AppState;
use crate::error::Error;

/// `router` with the key check in front of it (applied by `app::router_with` to the local
/// listener's `/mcp` only).
pub fn guarded(router: axum::Router<AppState>, state: AppState) -> axum::Router<AppState> {
    router.layer(axum::middleware::from_fn_with_state(state, check))
}

async fn check(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let presented = match request.headers().get(header::AUTHORIZATION) {
        None => {
            if state.mcp_keys.required() {
                return Error::Unauthorized(
                    "this MCPbox requires a client key on /mcp: send \"Authorization: Bearer \
                     mcpbox_k_…\" with a key an admin issued under Settings → MCP client keys",
                )
                .into_response();
            }
            return next.run(request).await;
        }
        Some(value) => bearer(value.as_bytes()),
    };
    let Some(presented) = presented else {
        return Error::Unauthorized(
            "the Authorization header must be \"Bearer mcpbox_k_…\" with an MCP client key",
        )
        .into_response();
    };
    match state.mcp_keys.verify(&state.db, &presented).await {
        Ok(Some(key)) => {
            request
                .extensions_mut()
                .insert(Caller::Key { name: key.name });
            next.run(request).await
        }
        Ok(None) => Error::Unauthorized(
            "this MCP client key is not valid (mistyped, or revoked): ask an admin for a new one \
             under Settings → MCP client keys",
        )
        .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "could not check an MCP client key");
            Error::Unavailable("MCPbox could not check the client key; try again".into())
                .into_response()
        }
    }
}

/// The token of `Bearer <token>` (the scheme case-insensitive, RFC 9110), if that is the form.
fn bearer(value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn only_bearer_values_are_read() {
        assert_eq!(bearer(b"Bearer abc").as_deref(), Some("abc"));
        assert_eq!(bearer(b"bearer  abc ").as_deref(), Some("abc"));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"abc"), None);
        assert_eq!(bearer(&[0xff, b' ', b'a']), None);
    }
}

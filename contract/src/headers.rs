//! Header names on the edge worker → origin hop.
//!
//! The Worker strips any client-supplied copy of these before it forwards a request, then adds
//! its own; the origin's tunnel listener trusts them only alongside a valid service token.

/// Shared secret proving a request came through our Worker (compared in constant time).
pub const SERVICE_TOKEN: &str = "x-mcpbox-service-token";

/// The end user's email, taken by the Worker from a verified OIDC id_token.
pub const USER_EMAIL: &str = "x-mcpbox-user-email";

/// Every identity header of ours, for the Worker's strip list.
pub const IDENTITY_HEADERS: [&str; 2] = [SERVICE_TOKEN, USER_EMAIL];

-- OAuth 2.1 sign-in to external MCP sources, and the legacy SSE transport (issue #16).
--
-- An OAuth source keeps auth_type 'none' and says it is OAuth by oauth_state: SQLite cannot change
-- that column's CHECK without rebuilding external_sources, and dropping the table would cascade to
-- the tools imported from it. oauth_state: 'signed_out' (no grant yet), 'signed_in', or
-- 'sign_in_needed' (the authorization server refused the grant: an admin signs in again).
ALTER TABLE external_sources ADD COLUMN oauth_state TEXT
    CHECK (oauth_state IN ('signed_out', 'signed_in', 'sign_in_needed'));

-- The grant of a signed-in source. Tokens are never stored in the clear: `credentials` (rmcp's
-- StoredCredentials: client id, access and refresh token, expiry) is AES-256-GCM under a key
-- derived for this purpose, bound to the source id (external::oauth). The client is public
-- (rmcp registers with token_endpoint_auth_method none), so there is no client secret.
CREATE TABLE external_source_oauth (
    source_id      TEXT PRIMARY KEY REFERENCES external_sources(id) ON DELETE CASCADE,
    -- The authorization server's RFC 8414 metadata as discovered at sign-in (JSON, public).
    metadata       TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    credentials    TEXT,
    signed_in_by   TEXT NOT NULL,
    signed_in_at   TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

-- 1: the source speaks the legacy HTTP+SSE transport (2024-11-05), not Streamable HTTP. A column
-- of its own for the same reason as oauth_state: transport_type's CHECK allows only
-- 'streamable_http', and stays so.
ALTER TABLE external_sources ADD COLUMN legacy_sse BIGINT NOT NULL DEFAULT 0 CHECK (legacy_sse IN (0, 1));

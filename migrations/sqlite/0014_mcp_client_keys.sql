-- Local MCP client keys: what a client of the local listener's /mcp presents as
-- `Authorization: Bearer mcpbox_k_…` (required when that listener is not on loopback). Issued by
-- an admin, shown once, revocable; the name is what the execution log shows as executed-by
-- (`mcp:key:{name}`).
--
-- Only the key's SHA-256 is stored (hex, looked up by equality): a key is 32 random bytes from
-- the OS, so no dictionary or brute force applies and a slow password hash would only slow every
-- MCP request. `prefix` is the first characters of the key, enough to tell keys apart and not
-- enough to use one. Revoked rows stay (their names are in the logs) and keep their names.

CREATE TABLE mcp_client_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    key_hash     TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    -- Written at most once a minute per key and replica (gateway::keys), not on every call.
    last_used_at TEXT,
    revoked_at   TEXT
);

CREATE INDEX mcp_client_keys_revoked ON mcp_client_keys (revoked_at, created_at);

-- External MCP sources: other MCP servers whose tools a server offers as passthrough tools.
--
-- A source belongs to a server. Its credential is never stored here: `auth_secret_name` names one
-- of the server's secrets (server_secrets), decrypted only when a request is sent. A source added
-- over MCP starts as 'pending_approval' and MCPbox sends it no request at all until an admin
-- approves it (an LLM must not be able to make the origin probe arbitrary addresses).

CREATE TABLE external_sources (
    id                 TEXT PRIMARY KEY,
    server_id          TEXT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    -- Same rules as tool names; imported tools are named {source}_{tool}.
    name               TEXT NOT NULL,
    -- http:// or https:// only, without credentials in it (external::SourceUrl).
    url                TEXT NOT NULL,
    auth_type          TEXT NOT NULL CHECK (auth_type IN ('none', 'bearer', 'header')),
    auth_secret_name   TEXT,
    -- For 'header': the header that carries the secret.
    auth_header_name   TEXT,
    -- Only Streamable HTTP is spoken (the legacy SSE transport is refused when a source is added).
    transport_type     TEXT NOT NULL DEFAULT 'streamable_http' CHECK (transport_type IN ('streamable_http')),
    -- 'pending_approval' (no request is ever sent), 'active' (last contact worked), 'error'.
    status             TEXT NOT NULL CHECK (status IN ('pending_approval', 'active', 'error')),
    approved_by        TEXT,
    approved_at        TEXT,
    -- The last health check, discovery or failed call: when, and what went wrong.
    last_checked_at    TEXT,
    last_error         TEXT,
    -- The protocol revision the source answered with ('2026-07-28' or '2025-11-25').
    protocol_version   TEXT,
    -- JSON array of the tools the last discovery found (name, description, input_schema).
    discovered_tools   TEXT NOT NULL DEFAULT '[]',
    tool_count         BIGINT NOT NULL DEFAULT 0,
    last_discovered_at TEXT,
    created_by         TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    UNIQUE (server_id, name)
);
CREATE INDEX external_sources_server ON external_sources (server_id);

-- 'python': code run in the sandbox. 'passthrough': a version's python_code column holds the
-- binding instead ({"source_id", "remote_tool"} as JSON, hashed and approved like code), and its
-- input_schema is the remote tool's. external_source_id mirrors the binding so deleting the
-- source deletes its tools; the version's content is what a call trusts.
ALTER TABLE tools ADD COLUMN kind TEXT NOT NULL DEFAULT 'python' CHECK (kind IN ('python', 'passthrough'));
ALTER TABLE tools ADD COLUMN external_source_id TEXT REFERENCES external_sources(id) ON DELETE CASCADE;
CREATE INDEX tools_external_source ON tools (external_source_id);

-- Who stopped a server: an admin's stop is a kill switch an LLM cannot undo.
--
-- servers.stopped_by_admin is 1 when the server's last stop came from a person (REST API or UI);
-- then mcpbox_start_server (any MCP caller, local or remote) is refused and only a person starts
-- it again (control::may_start). It is 0 while running, for servers never started, and after an
-- LLM's own stop.
--
-- Existing rows: who stopped a server before this column existed is not known, so every
-- server stopped now counts as stopped by an admin (fail closed): an admin starts it once.
-- Existing servers named 'mcpbox' or 'mcpbox_...' (refused from now on, see names::Name::server)
-- stay as they are: their tools are no longer listed over MCP (they could never be called), and
-- an admin renames the server to bring them back.

ALTER TABLE servers ADD COLUMN stopped_by_admin INTEGER NOT NULL DEFAULT 0;
UPDATE servers SET stopped_by_admin = 1 WHERE status = 'stopped';

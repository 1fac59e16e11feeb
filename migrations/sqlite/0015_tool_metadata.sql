-- Tool metadata a version declares, bound by its approval like its code: the MCP tool
-- annotations the author declared (JSON: readOnlyHint, destructiveHint, idempotentHint,
-- openWorldHint) and the output schema the sandbox derived from `main`'s return annotation
-- (JSON Schema text). NULL when the version has none, and on every version written before this
-- migration, whose hash (the code's alone) is unchanged: `tools::version_hash` covers these
-- columns only when one is set.

ALTER TABLE tool_versions ADD COLUMN annotations TEXT;
ALTER TABLE tool_versions ADD COLUMN output_schema TEXT;

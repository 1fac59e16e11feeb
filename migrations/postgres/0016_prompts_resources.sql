-- Prompts and resources an LLM authors and a person approves (issue #16): rows of `tools` of
-- two more kinds, so they share the version, approval, rename and disable rules of tools (see
-- ARCHITECTURE.md, "Prompts and resources"). A version's python_code column holds the item's
-- content as JSON (a prompt's template and arguments; a resource's MIME type and text, or the
-- tool of the same server that produces it and the URI parameters it passes), hashed into
-- code_hash and re-checked before it is served, exactly like code.
ALTER TABLE tools DROP CONSTRAINT IF EXISTS tools_kind_check;
ALTER TABLE tools ADD CONSTRAINT tools_kind_check
    CHECK (kind IN ('python', 'passthrough', 'prompt', 'resource'));

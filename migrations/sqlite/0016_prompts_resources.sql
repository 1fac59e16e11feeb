-- Prompts and resources an LLM authors and a person approves (issue #16): rows of `tools` of
-- two more kinds, so they share the version, approval, rename and disable rules of tools (see
-- ARCHITECTURE.md, "Prompts and resources"). A version's python_code column holds the item's
-- content as JSON (a prompt's template and arguments; a resource's MIME type and text, or the
-- tool of the same server that produces it and the URI parameters it passes), hashed into
-- code_hash and re-checked before it is served, exactly like code.
--
-- SQLite cannot change a CHECK constraint in place: the column is rebuilt (DROP COLUMN of a
-- column whose only constraint is its own CHECK is allowed; the table and its foreign keys stay).
ALTER TABLE tools ADD COLUMN kind_new TEXT NOT NULL DEFAULT 'python'
    CHECK (kind_new IN ('python', 'passthrough', 'prompt', 'resource'));
UPDATE tools SET kind_new = kind;
ALTER TABLE tools DROP COLUMN kind;
ALTER TABLE tools RENAME COLUMN kind_new TO kind;

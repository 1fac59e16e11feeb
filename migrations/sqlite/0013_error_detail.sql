-- What an author needs to fix a failed run, next to its message and kind: the error's category
-- (code, validation, timeout, network, sandbox, refused, cancelled) and its detail as JSON
-- ({"error_type": ..., "traceback": [{"line", "function", "source"}]}: the frames of the
-- tool's own code only, source lines redacted like the rest of the row). NULL on successful
-- runs and on rows written before this migration.

ALTER TABLE execution_logs ADD COLUMN error_category TEXT;
ALTER TABLE execution_logs ADD COLUMN error_detail TEXT;

-- Tools that ask back (ask / sample / roots): a call runs the tool once per round, each round a
-- row. `input_round` counts the rounds of one call from 1 (rows before this migration are 1);
-- `input_requests` is the JSON of the questions a round ended with ({key: {method, params}},
-- redacted like a result), NULL when the round did not end asking: such a row has no result and
-- no error (success = 1: nothing failed), its status is input_required; `input_answers` is the JSON of the
-- client's answers the round ran with (redacted like arguments), NULL when it had none.

ALTER TABLE execution_logs ADD COLUMN input_round BIGINT NOT NULL DEFAULT 1;
ALTER TABLE execution_logs ADD COLUMN input_requests TEXT;
ALTER TABLE execution_logs ADD COLUMN input_answers TEXT;

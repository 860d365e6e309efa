-- Scheduled submits (Operation-Scheduled-At): when the operation may start at the earliest. Its first attempt's
-- next_attempt_at is this instant, so the claim (ordered by next_attempt_at among due rows) leaves it alone until then.
ALTER TABLE operations ADD COLUMN scheduled_at timestamptz;

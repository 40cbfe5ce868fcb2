-- A deleted event is retired, not forgotten: its id is never reused, so new
-- positions can never collide with the entries it already holds.
ALTER TABLE fan_events ADD COLUMN IF NOT EXISTS deleted_at timestamptz;

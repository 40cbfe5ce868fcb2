-- The line in front of the gate. admissions_per_second set means the event
-- has one; line_seed (secret, never served) fixes the pre-queue's shuffle
-- for the event's whole life, so joining again never redraws a place;
-- line_pauses lists the times the gate was lost and restored
-- ("startMs-endMs,..."), when the line's clock stood still.
ALTER TABLE fan_events
    ADD COLUMN IF NOT EXISTS admissions_per_second bigint CHECK (admissions_per_second > 0),
    ADD COLUMN IF NOT EXISTS prequeue_minutes integer CHECK (prequeue_minutes BETWEEN 0 AND 1440),
    ADD COLUMN IF NOT EXISTS line_seed text NOT NULL DEFAULT replace(gen_random_uuid()::text, '-', ''),
    ADD COLUMN IF NOT EXISTS line_pauses text NOT NULL DEFAULT '';

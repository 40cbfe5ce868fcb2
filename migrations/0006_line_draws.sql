-- The pre-queue's draw, revealed: once an event's pre-queue is drawn and
-- every environment has counted its fans, the scheduler stores the seed
-- (the one fan_events.line_seed holds, whose commitment the event showed
-- before its pre-queue) and the pre-queued fans' references (8 bytes each,
-- keyed by the seed: no fan id) in the draw's order. Written once: a row
-- is never changed, so what was published stays published.
CREATE TABLE IF NOT EXISTS line_draws (
    event_id text PRIMARY KEY,
    seed text NOT NULL,
    fans bytea NOT NULL CHECK (length(fans) % 8 = 0),
    revealed_at timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT ON line_draws TO fanrush_scheduler;
GRANT SELECT ON line_draws TO fanrush_admin;

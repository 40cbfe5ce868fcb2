-- Where an event's gate lives on a Redis cluster: the hash tag every one of
-- its keys carries, chosen when the event is first defined
-- (rules::scaling::placement) and kept for its life, so a restore lists it
-- under the same tag. NULL (an event defined before tags) is its own id.
ALTER TABLE fan_events ADD COLUMN IF NOT EXISTS gate_tag text;
COMMENT ON COLUMN fan_events.gate_tag IS 'the hash tag of the event''s gate keys; NULL: the event id';

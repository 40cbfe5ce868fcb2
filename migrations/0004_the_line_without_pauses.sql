-- The line stops by itself when the gate does: its served mark moves only
-- as the gate grants places, so a restore needs no record of how long the
-- gate was lost. The pauses that record it go.
ALTER TABLE fan_events DROP COLUMN IF EXISTS line_pauses;

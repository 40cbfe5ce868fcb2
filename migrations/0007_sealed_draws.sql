-- A pre-queue's draw is sealed before the opening with a digest of who is
-- in it (docs/line.md, "Checking the draw"): every place depends on it, so
-- the reveal stores it beside the seed, and the fans in the order the gate
-- counted them, the order the digest is taken in. A row stored before
-- draws were sealed keeps '' and its old order.
ALTER TABLE line_draws ADD COLUMN IF NOT EXISTS digest text NOT NULL DEFAULT '';
ALTER TABLE line_draws ALTER COLUMN digest DROP DEFAULT;
COMMENT ON COLUMN line_draws.fans IS 'the pre-queued fans'' references, 8 bytes each, in the order the gate counted them';

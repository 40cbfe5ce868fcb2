-- The calendar of fan events and every accepted entry. IF NOT EXISTS, so a
-- database created before migrations were tracked takes it as applied.
CREATE TABLE IF NOT EXISTS fan_events (
    event_id          text PRIMARY KEY,
    title             text NOT NULL,
    opens_at          timestamptz NOT NULL,
    closes_at         timestamptz NOT NULL,
    capacity          bigint NOT NULL CHECK (capacity > 0),
    expected_peak_rps double precision NOT NULL CHECK (expected_peak_rps >= 0),
    lead_minutes      integer,
    cooldown_minutes  integer,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (closes_at > opens_at)
);

CREATE TABLE IF NOT EXISTS entries (
    event_id    text NOT NULL,
    fan_id      text NOT NULL,
    position    bigint NOT NULL CHECK (position > 0),
    note        text,
    accepted_at timestamptz NOT NULL,
    written_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, fan_id),
    UNIQUE (event_id, position)
);

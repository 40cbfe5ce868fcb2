-- A database role per function, each with only the grants its work needs,
-- so a function's bug or compromise cannot do what the owner can:
--   fanrush_writer     inserts entries (a redelivery's ON CONFLICT (event_id, fan_id)
--                      DO NOTHING reads those two columns: no note, no position);
--   fanrush_admin      manages events, reads entries (counts, pages, restores);
--   fanrush_scheduler  reads events and entries (the calendar, restores, the sweep).
-- Each reads schema_migrations to see that the schema is current. The
-- roles can log in once they have a password: db-setup sets each
-- from its Secrets Manager secret (locally, trust authentication needs none).
-- Roles belong to the cluster, grants to this schema's tables: a role that
-- exists already (another schema, a concurrent run) is kept.
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['fanrush_writer', 'fanrush_admin', 'fanrush_scheduler'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I LOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), r);
        EXECUTE format('GRANT SELECT ON schema_migrations TO %I', r);
    END LOOP;
END
$roles$;

GRANT INSERT, SELECT (event_id, fan_id) ON entries TO fanrush_writer;
GRANT SELECT, INSERT, UPDATE ON fan_events TO fanrush_admin;
GRANT SELECT ON entries TO fanrush_admin;
GRANT SELECT ON fan_events, entries TO fanrush_scheduler;

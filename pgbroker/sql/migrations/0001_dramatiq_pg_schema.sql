-- dramatiq-pg 0.12's own schema (dramatiq_pg/schema.sql), unchanged in shape.
-- Its init script fails when run twice, so every statement here is guarded:
-- a database already set up with `dramatiq-pg init` passes through untouched.

DO $$
BEGIN
    CREATE TYPE {schema}."state" AS ENUM ('queued', 'consumed', 'rejected', 'done');
EXCEPTION WHEN duplicate_object THEN
    NULL;
END
$$;

CREATE TABLE IF NOT EXISTS {schema}."queue" (
    message_id uuid PRIMARY KEY,
    queue_name TEXT NOT NULL DEFAULT 'default',
    "state" {schema}."state",
    mtime TIMESTAMP WITH TIME ZONE DEFAULT (NOW() AT TIME ZONE 'UTC'),
    -- message as encoded by dramatiq.
    message JSONB,
    "result" JSONB,
    result_ttl TIMESTAMP WITH TIME ZONE
);

CREATE INDEX IF NOT EXISTS queue_state_mtime_idx ON {schema}."queue" ("state", mtime);

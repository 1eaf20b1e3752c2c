-- A paused queue: no worker claims its jobs until it is resumed; jobs already
-- running finish. A row per paused queue, so pausing works for a queue no
-- worker has declared yet and survives every worker's restart.

CREATE TABLE IF NOT EXISTS {schema}.queue_pauses (
    queue_name text PRIMARY KEY,
    paused_at timestamptz NOT NULL DEFAULT now(),
    paused_by text
);

-- What our broker adds to dramatiq-pg's table. Every column has a default, so a
-- row written by plain dramatiq-pg is still a valid row.

ALTER TABLE {schema}."queue"
    -- Dramatiq priority of the actor: lower runs first.
    ADD COLUMN IF NOT EXISTS priority smallint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS enqueued_at timestamptz NOT NULL DEFAULT now(),
    -- Delays and retry backoffs live here, visible to every worker, instead of
    -- in one worker's memory on a ".DQ" queue.
    ADD COLUMN IF NOT EXISTS available_at timestamptz NOT NULL DEFAULT now(),
    -- Deliveries so far; a requeue of a job that never started gives its one back.
    ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0,
    -- Times the job was taken back from a worker that stopped renewing its lease.
    ADD COLUMN IF NOT EXISTS rescues integer NOT NULL DEFAULT 0,
    -- Which worker holds a consumed row, and until when. A live worker renews the
    -- lease on a heartbeat; an expired lease means the worker is gone.
    ADD COLUMN IF NOT EXISTS lease_owner text,
    ADD COLUMN IF NOT EXISTS lease_expires_at timestamptz,
    ADD COLUMN IF NOT EXISTS started_at timestamptz,
    ADD COLUMN IF NOT EXISTS finished_at timestamptz,
    ADD COLUMN IF NOT EXISTS last_error text;

-- dramatiq-pg's default stores UTC wall time into a timestamptz, which is off by
-- the session's UTC offset; now() is already an instant.
ALTER TABLE {schema}."queue" ALTER COLUMN mtime SET DEFAULT now();

-- The claim reads this index in order and stops at its LIMIT.
CREATE INDEX IF NOT EXISTS queue_claim_idx
    ON {schema}."queue" (queue_name, priority, available_at)
    WHERE "state" = 'queued';

-- The rescuer looks only at running rows.
CREATE INDEX IF NOT EXISTS queue_lease_idx
    ON {schema}."queue" (lease_expires_at)
    WHERE "state" = 'consumed';

-- Rows left by plain dramatiq-pg: delayed messages on "X.DQ" queues move back to
-- their queue with their eta as due time, and running rows (which have no lease)
-- become rescuable at once.
UPDATE {schema}."queue"
SET queue_name = left(queue_name, -3),
    available_at = to_timestamp((message #>> ARRAY['options', 'eta'])::bigint / 1000.0),
    message = jsonb_set(message #- ARRAY['options', 'eta'], ARRAY['queue_name'],
                        to_jsonb(left(queue_name, -3))),
    "state" = 'queued'
WHERE queue_name LIKE '%.DQ'
  AND "state" IN ('queued', 'consumed')
  AND message #>> ARRAY['options', 'eta'] IS NOT NULL;

UPDATE {schema}."queue"
SET lease_expires_at = now()
WHERE "state" = 'consumed' AND lease_expires_at IS NULL;

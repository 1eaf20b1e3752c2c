-- The dashboard's reads of the queue table, each under a "-- name --" header.
-- {schema} is the broker's schema. Optional filters are written in SQL
-- ("%(x)s IS NULL OR ..."): psycopg2 sends literal values, so the planner
-- folds the unused ones away and picks the index of the ones given.

-- throughput --
-- Jobs finished per queue and minute over the last hour, done and dead apart:
-- an index-only scan of the last hour of each state in queue_finished_idx
-- (state, finished_at). One branch a state: an IN over both would be dropped
-- as the index's own predicate, and the scan would read every finished job.
-- Grouped by the timestamp's minute (cheap), not by computed minutes ago
-- (numeric epoch arithmetic per row).
SELECT queue_name, minute, sum(done)::bigint AS done, sum(dead)::bigint AS dead
FROM (
    SELECT queue_name, date_trunc('minute', finished_at) AS minute, 1 AS done, 0 AS dead
    FROM {schema}."queue"
    WHERE "state" = 'done' AND finished_at > now() - interval '1 hour'
    UNION ALL
    SELECT queue_name, date_trunc('minute', finished_at), 0, 1
    FROM {schema}."queue"
    WHERE "state" = 'rejected' AND finished_at > now() - interval '1 hour'
) AS finished
GROUP BY 1, 2;

-- run_times --
-- p50 and p95 run time (last attempt's start to finish) per queue (each job
-- type has its own queue), over the jobs done in the last hour: an index-only
-- scan of queue_finished_idx. The IN repeats the index's predicate so the
-- planner sees it applies; the state = 'done' is the scan's first key.
SELECT queue_name,
       count(*) AS jobs,
       percentile_disc(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY finished_at - started_at)
           AS percentiles
FROM {schema}."queue"
WHERE "state" IN ('done', 'rejected') AND finished_at > now() - interval '1 hour'
  AND "state" = 'done' AND started_at IS NOT NULL
GROUP BY 1
ORDER BY 1;

-- job_list --
-- One page of jobs, newest first, after the keyset cursor (enqueued_at, id).
-- queue_listed_idx (state, queue, enqueued_at, id) orders the jobs of each
-- (state, queue) pair: the newest page of every pair the filters allow is
-- read in that order, stopping at the page size, and the pages are merged.
-- The pairs are the chosen state, or every state, with the chosen queue, or
-- with each queue the state has, found one index descent a queue (a loose
-- index scan). An error search reads queue_errored_idx, which holds only the
-- jobs with an error. No index orders all jobs: each would take an entry at
-- each of a job's writes (0021_one_listing_index.sql).
WITH RECURSIVE
states AS (
    SELECT s AS "state"
    FROM unnest(enum_range(NULL::{schema}."state")) AS s
    WHERE %(db_state)s::text IS NULL OR s = %(db_state)s::{schema}."state"
),
-- Each state's queues, in name order, while no queue is chosen.
found AS (
    SELECT states."state",
           (SELECT min(q.queue_name) FROM {schema}."queue" AS q
            WHERE q."state" = states."state") AS queue_name
    FROM states
    WHERE %(queue_name)s::text IS NULL
    UNION ALL
    SELECT found."state",
           (SELECT min(q.queue_name) FROM {schema}."queue" AS q
            WHERE q."state" = found."state" AND q.queue_name > found.queue_name)
    FROM found
    WHERE found.queue_name IS NOT NULL
),
pairs AS (
    SELECT "state", queue_name FROM found WHERE queue_name IS NOT NULL
    UNION ALL
    SELECT "state", %(queue_name)s::text FROM states WHERE %(queue_name)s::text IS NOT NULL
)
SELECT page.*
FROM pairs
CROSS JOIN LATERAL (
    SELECT message_id::text AS id,
           queue_name,
           message ->> 'actor_name' AS actor_name,
           {schema}.job_state("state"::text, available_at) AS state,
           attempts,
           priority,
           enqueued_at,
           available_at,
           started_at,
           finished_at,
           left(last_error, 300) AS last_error
    FROM {schema}."queue" AS q
    WHERE q."state" = pairs."state"
      AND q.queue_name = pairs.queue_name
      AND (%(due)s::boolean IS NULL OR (available_at <= now()) = %(due)s)
      AND (%(actor_name)s::text IS NULL OR message ->> 'actor_name' = %(actor_name)s)
      AND (%(priority)s::int IS NULL OR priority = %(priority)s)
      AND (%(since)s::timestamptz IS NULL OR enqueued_at >= %(since)s)
      AND (%(until)s::timestamptz IS NULL OR enqueued_at < %(until)s)
      -- Spelled out, so that the planner sees queue_errored_idx applies.
      AND (%(error_like)s::text IS NULL
           OR (last_error IS NOT NULL AND last_error ILIKE %(error_like)s))
      AND (%(before_at)s::timestamptz IS NULL
           OR (enqueued_at, message_id) < (%(before_at)s, %(before_id)s::uuid))
    ORDER BY enqueued_at DESC, message_id DESC
    LIMIT %(limit)s
) AS page
ORDER BY page.enqueued_at DESC, page.id::uuid DESC
LIMIT %(limit)s;

-- job_detail --
-- Everything the job page shows that job_by_id leaves out.
SELECT message -> 'options' AS options,
       message #>> ARRAY['options', 'traceback'] AS traceback,
       cancelled_by,
       singleton_key,
       mtime
FROM {schema}."queue"
WHERE message_id = %(message_id)s;

-- workers_holding --
-- The lease owners of running jobs, with what they run (without the worker
-- registry, the workers seen through their leases).
SELECT lease_owner,
       count(*) AS running,
       array_agg(DISTINCT queue_name ORDER BY queue_name) AS queues,
       min(started_at) AS oldest_start,
       max(lease_expires_at) AS lease_until,
       bool_or(lease_expires_at < now()) AS lapsed
FROM {schema}."queue"
WHERE "state" = 'consumed'
GROUP BY lease_owner
ORDER BY lease_owner;

-- running_jobs --
-- Running jobs, oldest first.
SELECT message_id::text AS id, queue_name, message ->> 'actor_name' AS actor_name,
       lease_owner, started_at, lease_expires_at, attempts,
       extract(epoch FROM now() - started_at)::float8 AS running_seconds,
       lease_expires_at < now() AS lapsed
FROM {schema}."queue"
WHERE "state" = 'consumed'
ORDER BY started_at
LIMIT %(limit)s;

-- workers_recent --
-- Workers that ended deliveries in the last day, from the attempt history.
SELECT worker, max(ended_at) AS last_seen, count(*) AS failed_deliveries
FROM {schema}.job_attempts
WHERE ended_at > now() - interval '1 day' AND worker IS NOT NULL
GROUP BY worker
ORDER BY max(ended_at) DESC
LIMIT 50;

-- last_tick --
-- The latest job a periodic actor's scheduler sent (queue_singleton_slot_idx).
SELECT message_id::text AS id, enqueued_at,
       {schema}.job_state("state"::text, available_at) AS state,
       finished_at
FROM {schema}."queue"
WHERE queue_name = %(queue_name)s AND singleton_key = %(singleton_key)s
  AND singleton_slot IS NOT NULL
ORDER BY singleton_slot DESC
LIMIT 1;

-- registry_present --
-- Whether the broker keeps a worker registry ({schema}.workers, one row per
-- live worker process, written at boot and on every heartbeat).
SELECT to_regclass(format('%%I.workers', %(schema)s)) IS NOT NULL AS present;

-- registry_workers --
-- The registered worker processes with their running jobs; alive while the
-- last heartbeat is younger than the worker's lease. Workers gone in the last
-- day stay listed as dead until the registry forgets them.
SELECT w.worker_id AS lease_owner,
       w.host,
       w.pid,
       w.queues,
       w.started_at,
       w.last_heartbeat_at,
       w.last_heartbeat_at > now() - w.lease_seconds * interval '1 second' AS alive,
       (SELECT count(*) FROM {schema}."queue" AS q
        WHERE q."state" = 'consumed' AND q.lease_owner = w.worker_id) AS running
FROM {schema}.workers AS w
ORDER BY alive DESC, w.host, w.pid, w.worker_id;

-- Every query of the broker, each under a "-- name --" header and a one-line
-- description. {schema} is the quoted schema name, {channel_prefix} the quoted
-- literal "<schema>." that NOTIFY channels start with; literal braces are doubled.
-- States: queued (waiting, or delayed while available_at is in the future),
-- consumed (running, leased to a worker), done, rejected (dead letter).

-- enqueue --
-- Store one message, or re-queue a stored one (a retry): enqueue_one() of
-- 0018_enqueue_functions.sql (as 0020 redefines it), fenced by the sending
-- delivery (NULL outside a job). Returns how many were written: 0 or 1.
SELECT {schema}.enqueue_one(%s::uuid, %s::text, %s::jsonb, %s::bytea, %s::smallint,
                            %s::integer, %s::text, %s::uuid, %s::uuid);

-- enqueue_new --
-- Store one new message, sent outside a job (prepared: see PREPARED in
-- broker.py): enqueue_one()'s insert without its fence or upsert. A message
-- stored already fails on the primary key, and goes to enqueue instead.
INSERT INTO {schema}."queue"
    (message_id, queue_name, "state", message, message_bytes, priority, available_at,
     last_error)
VALUES (%(message_id)s, %(queue_name)s, 'queued', %(message)s, %(message_bytes)s,
        %(priority)s, now() + %(delay_ms)s * interval '1 millisecond', %(last_error)s);

-- enqueue_batch --
-- Store new messages in bulk (send_many), one array a column: enqueue_many().
-- Returns how many were written.
SELECT {schema}.enqueue_many(%s::uuid[], %s::text[], %s::jsonb[], %s::bytea[],
                             %s::smallint[], %s::integer[], %s::text[], %s::uuid, %s::uuid);

-- enqueue_copy --
-- Store new messages due now in bulk (send_many without a delay): COPY, about
-- twice as fast as enqueue_many() for the server, in the caller's transaction
-- with enqueue_fence_lost before it and enqueue_wake after it. Rows are
-- pgbroker/bulk.py's. An id that is already stored fails the whole COPY.
COPY {schema}."queue" (message_id, queue_name, "state", message, message_bytes, priority,
                       last_error)
FROM STDIN;

-- enqueue_fence_lost --
-- Whether another delivery holds the message of the delivery that sends
-- (fence_lost() of 0018_enqueue_functions.sql, for enqueue_copy).
SELECT {schema}.fence_lost(%s::uuid, %s::uuid);

-- enqueue_wake --
-- Wake the consumers of these queues (after enqueue_copy, delivered at commit).
SELECT count(pg_notify({channel_prefix} || queue_name, ''))
FROM unnest(%s::text[]) AS queue_name;

-- enqueue_singleton --
-- Insert one message unless a job with its singleton key is live on the queue,
-- or was sent in the same slot; returns its id if it was inserted.
WITH inserted AS (
    INSERT INTO {schema}."queue" AS q
        (message_id, queue_name, "state", message, message_bytes, priority, available_at,
         singleton_key, singleton_slot)
    VALUES (%(message_id)s, %(queue_name)s, 'queued', %(message)s::jsonb,
            %(message_bytes)s::bytea, %(priority)s,
            now() + %(delay_ms)s * interval '1 millisecond', %(singleton_key)s,
            coalesce(%(singleton_slot)s,
                     floor(extract(epoch FROM now()) / %(singleton_seconds)s)::bigint))
    ON CONFLICT DO NOTHING
    RETURNING q.message_id, q.queue_name, q.available_at
),
woken AS (
    SELECT pg_notify({channel_prefix} || queue_name, '')
    FROM inserted
)
-- Joining woken makes PostgreSQL run it: a SELECT CTE nobody reads never runs.
-- An inner join: the planner drops an unread LEFT JOIN to a one-row subquery.
SELECT inserted.message_id::text
FROM inserted CROSS JOIN (SELECT count(*) FROM woken) AS notified;

-- singleton_holder --
-- The job that holds a singleton key: the live one, else the one of the slot.
SELECT message_id::text
FROM {schema}."queue"
WHERE queue_name = %(queue_name)s
  AND singleton_key = %(singleton_key)s
  AND ("state" IN ('queued', 'consumed')
       OR singleton_slot = coalesce(%(singleton_slot)s,
                                    floor(extract(epoch FROM now())
                                          / %(singleton_seconds)s)::bigint))
ORDER BY "state" IN ('queued', 'consumed') DESC, enqueued_at DESC
LIMIT 1;

-- claim --
-- Lease up to %(limit)s due messages of one queue to this worker, best first,
-- each under a new delivery token; and the queue's next due time after them.
-- SKIP LOCKED lets consumers race without waiting on each other; the ORDER BY
-- matches queue_claim_idx so the scan stops at the LIMIT. The last row has
-- only next_due_seconds (NULL when nothing is delayed): the consumer sleeps
-- until then, so a delayed message starts at its due time, not at a poll.
WITH due AS (
    SELECT message_id
    FROM {schema}."queue"
    WHERE queue_name = %(queue_name)s
      AND "state" = 'queued'
      AND available_at <= now()
      -- A paused queue is claimed by no one (one primary-key probe per claim).
      AND NOT EXISTS (SELECT FROM {schema}.queue_pauses AS p WHERE p.queue_name = %(queue_name)s)
      -- Nor is any while claims are fenced after a crash (0022_claim_fence.sql).
      AND EXISTS (SELECT FROM {schema}.claims_open WHERE since <= now())
      -- This transaction commits without waiting for its WAL flush (a claim
      -- lost in a crash is what the fence above is for), unless a registered
      -- worker claims without looking at the fence (an older release).
      AND (SELECT set_config('synchronous_commit',
                             CASE WHEN EXISTS (SELECT FROM {schema}.workers WHERE NOT fence_aware)
                                  THEN current_setting('synchronous_commit')
                                  ELSE 'off' END,
                             true)) IS NOT NULL
    ORDER BY priority, available_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
claimed AS (
    UPDATE {schema}."queue" AS q
    SET "state" = 'consumed',
        delivery_id = gen_random_uuid(),
        lease_owner = %(owner)s,
        lease_expires_at = now() + %(lease_seconds)s * interval '1 second',
        attempts = q.attempts + 1,
        started_at = now(),
        mtime = now()
    -- Each id by its primary key, not a join with due: the claim is prepared,
    -- and its generic plan (which PostgreSQL may pick from the sixth run on),
    -- once the table has statistics of a backlog, takes LIMIT $2 for a tenth
    -- of the table and hash-joins that with a scan of all of it.
    WHERE q.message_id = ANY (ARRAY(SELECT message_id FROM due))
    RETURNING q.message_id::text, q.delivery_id::text, q.message::text, q.message_bytes,
              q.priority, q.available_at
)
(SELECT message_id, delivery_id, message, message_bytes, NULL::float8 AS next_due_seconds
 FROM claimed
 ORDER BY priority, available_at)  -- best first, as due found them
UNION ALL
-- The first due time past now() of this queue, from queue_claim_idx: the
-- first entry past now() of each priority the queue has, its priorities found
-- one index descent each (an index of its own on (queue, due time) cost every
-- enqueue an entry, 0019_fewer_index_writes.sql).
SELECT NULL, NULL, NULL, NULL,
       extract(epoch FROM (
           WITH RECURSIVE levels(priority) AS (
               (SELECT priority
                FROM {schema}."queue"
                WHERE queue_name = %(queue_name)s AND "state" = 'queued'
                ORDER BY priority
                LIMIT 1)
               UNION ALL
               SELECT (SELECT q.priority
                       FROM {schema}."queue" AS q
                       WHERE q.queue_name = %(queue_name)s AND q."state" = 'queued'
                         AND q.priority > levels.priority
                       ORDER BY q.priority
                       LIMIT 1)
               FROM levels
               WHERE levels.priority IS NOT NULL
           )
           SELECT min((SELECT q.available_at
                       FROM {schema}."queue" AS q
                       WHERE q.queue_name = %(queue_name)s AND q."state" = 'queued'
                         AND q.priority = levels.priority AND q.available_at > now()
                       ORDER BY q.available_at
                       LIMIT 1))
           FROM levels
           WHERE levels.priority IS NOT NULL
       ) - now())::float8;

-- ack --
-- Mark a message done, if this delivery still holds it. A message that Retries
-- re-queued, or that was rescued after our lease ran out, is left alone. The
-- delivery id stays on the row (see 0006_deliveries.sql).
UPDATE {schema}."queue"
SET "state" = 'done',
    finished_at = now(),
    mtime = now(),
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE message_id = %(message_id)s
  AND delivery_id = %(delivery_id)s
  AND "state" = 'consumed';

-- ack_many --
-- The ack above for many deliveries in one statement (group commit, see
-- acks.py): one WAL flush for every job the worker finished meanwhile.
UPDATE {schema}."queue" AS q
SET "state" = 'done',
    finished_at = now(),
    mtime = now(),
    lease_owner = NULL,
    lease_expires_at = NULL
-- Each id by its primary key (a join with the arrays let a generic plan read
-- every running row). Matching each set apart is matching the pairs: a
-- delivery id is new at every claim, so a row holds a listed one only if it
-- is its own.
WHERE q.message_id = ANY (%(message_ids)s::uuid[])
  AND q.delivery_id = ANY (%(delivery_ids)s::uuid[])
  AND q."state" = 'consumed';

-- nack --
-- Dead-letter a message this delivery holds, keeping the final message (its
-- options carry dramatiq's traceback) and the error.
UPDATE {schema}."queue"
SET "state" = 'rejected',
    message = %(message)s,
    message_bytes = %(message_bytes)s,
    last_error = %(last_error)s,
    finished_at = now(),
    mtime = now(),
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE message_id = %(message_id)s
  AND delivery_id = %(delivery_id)s
  AND "state" = 'consumed';

-- reject --
-- Dead-letter a claimed row that no worker may run (no message, too large,
-- undecodable, or naming another queue, id or actor), leaving its message as
-- the producer wrote it.
UPDATE {schema}."queue"
SET "state" = 'rejected',
    last_error = %(last_error)s,
    finished_at = now(),
    mtime = now(),
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE message_id = %(message_id)s
  AND delivery_id = %(delivery_id)s
  AND "state" = 'consumed';

-- requeue --
-- Give back deliveries this worker leased but never started (shutdown, consumer
-- restart), returning the attempt they did not use, and wake the consumers.
WITH requeued AS (
    UPDATE {schema}."queue"
    SET "state" = 'queued',
        attempts = greatest(attempts - 1, 0),
        delivery_id = NULL,
        lease_owner = NULL,
        lease_expires_at = NULL,
        mtime = now()
    WHERE message_id = ANY(%(message_ids)s::uuid[])
      AND delivery_id = ANY(%(delivery_ids)s::uuid[])
      AND "state" = 'consumed'
    RETURNING queue_name
)
SELECT pg_notify({channel_prefix} || queue_name, '')
FROM (SELECT DISTINCT queue_name FROM requeued) AS woken;

-- renew_leases --
-- Heartbeat: push back the lease of every delivery this worker holds, and
-- return the deliveries to stop, each with why: 'taken' (another delivery has
-- its message: rescued, and maybe claimed again) or 'cancelled' (an operator
-- cancelled it). A delivery whose row is gone (flushed) or that finished is
-- not stopped: nobody else runs it.
WITH held AS (
    SELECT *
    FROM unnest(%(message_ids)s::uuid[], %(delivery_ids)s::uuid[]) AS h(message_id, delivery_id)
),
-- A data-modifying CTE runs whether or not the query reads it.
renewed AS (
    UPDATE {schema}."queue" AS q
    SET lease_expires_at = now() + %(lease_seconds)s * interval '1 second'
    FROM held
    WHERE q.message_id = held.message_id
      AND q.delivery_id = held.delivery_id
      AND q."state" = 'consumed'
    RETURNING q.message_id
)
SELECT held.delivery_id::text,
       CASE WHEN q.delivery_id IS DISTINCT FROM held.delivery_id THEN 'taken'
            ELSE 'cancelled' END
FROM held JOIN {schema}."queue" AS q ON q.message_id = held.message_id
WHERE q.delivery_id IS DISTINCT FROM held.delivery_id OR q."state" = 'cancelled';

-- rescue --
-- Take back running messages whose worker is gone, in a bounded batch:
--  * at once, those of a registered worker whose heartbeat session vanished
--    while the server kept running (the process is dead);
--  * those whose lease lapsed, but only once the server has been up, and this
--    rescuer's own session connected, for a full lease: after an outage (of
--    the server, or of this rescuer's network) every live worker first gets a
--    whole lease to reconnect and renew, so a live job is never taken.
-- A message that lost its worker more than %(max_rescues)s times is
-- dead-lettered instead: it is probably what kills them. Run on the rescuer's
-- long-lived heartbeat session (its backend_start is the "connected since").
WITH settled AS (
    SELECT greatest(pg_postmaster_start_time(),
                    -- NULL (ignored) for a one-off rescue from the CLI.
                    CASE WHEN %(watched)s THEN (SELECT backend_start FROM pg_stat_activity
                                                WHERE pid = pg_backend_pid()) END)
           < now() - %(lease_seconds)s * interval '1 second' AS ok
),
dead_workers AS (
    SELECT w.worker_id
    FROM {schema}.workers AS w
    WHERE w.worker_id <> %(owner)s
      -- A session of an earlier server life vanished with the restart: no proof.
      AND w.backend_start >= pg_postmaster_start_time()
      -- backend_start is NULL for a session we may not see: count it alive.
      AND NOT EXISTS (SELECT 1 FROM pg_stat_activity AS a
                      WHERE a.pid = w.backend_pid
                        AND (a.backend_start = w.backend_start OR a.backend_start IS NULL))
),
orphans AS (
    SELECT message_id
    FROM {schema}."queue"
    WHERE "state" = 'consumed'
      AND (lease_owner IN (SELECT worker_id FROM dead_workers)
           -- A NULL lease is a row set to consumed by hand or by an old dramatiq-pg.
           OR ((lease_expires_at < now() OR lease_expires_at IS NULL)
               AND (SELECT ok FROM settled)))
    ORDER BY lease_expires_at NULLS FIRST
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
rescued AS (
    UPDATE {schema}."queue" AS q
    SET "state" = CASE WHEN q.rescues >= %(max_rescues)s
                       THEN 'rejected' ELSE 'queued' END::{schema}."state",
        last_error = CASE WHEN q.rescues >= %(max_rescues)s
                          THEN format('worker lost %%s times while running this job '
                                      '(last holder: %%s)', q.rescues + 1, q.lease_owner)
                          ELSE q.last_error END,
        finished_at = CASE WHEN q.rescues >= %(max_rescues)s THEN now() END,
        rescues = q.rescues + 1,
        available_at = now(),
        delivery_id = NULL,
        lease_owner = NULL,
        lease_expires_at = NULL,
        mtime = now()
    FROM orphans
    WHERE q.message_id = orphans.message_id
    RETURNING q.message_id::text, q.queue_name, q."state"::text
),
woken AS (
    SELECT pg_notify({channel_prefix} || queue_name, '')
    FROM (SELECT DISTINCT queue_name FROM rescued WHERE "state" = 'queued') AS due
)
-- Joining woken makes PostgreSQL run it: a SELECT CTE nobody reads never runs.
-- An inner join: the planner drops an unread LEFT JOIN to a one-row subquery.
SELECT rescued.message_id, rescued.queue_name, rescued."state"
FROM rescued CROSS JOIN (SELECT count(*) FROM woken) AS notified;

-- worker_heartbeat --
-- Register this worker, or refresh its row: queues, heartbeat time, the
-- session it keeps open (which changes when it reconnects), and that it claims
-- behind the fence. After a crash emptied claims_open, open claims again a
-- lease from now, the longest lease of any registered worker
-- (0022_claim_fence.sql), and return when; otherwise return NULL.
WITH reopened AS (
    INSERT INTO {schema}.claims_open (since)
    SELECT now() + greatest(%(lease_seconds)s, max(lease_seconds)) * interval '1 second'
    FROM {schema}.workers
    ON CONFLICT DO NOTHING
    RETURNING since
)
INSERT INTO {schema}.workers AS w
    (worker_id, host, pid, queues, lease_seconds, backend_pid, backend_start, problem,
     fence_aware)
SELECT %(worker_id)s, %(host)s, %(pid)s, %(queues)s::text[], %(lease_seconds)s,
       a.pid, a.backend_start, %(problem)s, true
FROM pg_stat_activity AS a
WHERE a.pid = pg_backend_pid()
ON CONFLICT (worker_id) DO UPDATE
SET queues = EXCLUDED.queues,
    lease_seconds = EXCLUDED.lease_seconds,
    last_heartbeat_at = now(),
    backend_pid = EXCLUDED.backend_pid,
    backend_start = EXCLUDED.backend_start,
    problem = EXCLUDED.problem,
    fence_aware = true
RETURNING (SELECT since FROM reopened);

-- workers_unwell --
-- This host's worker processes that report a problem or whose heartbeat is
-- older than their lease: what /healthz and `pts-jobs health` turn red on.
SELECT worker_id, pid,
       coalesce(problem, 'no heartbeat for '
                || round(extract(epoch FROM now() - last_heartbeat_at)) || ' s') AS problem
FROM {schema}.workers
WHERE host = %(host)s
  AND (problem IS NOT NULL
       OR last_heartbeat_at < now() - lease_seconds * interval '1 second')
ORDER BY worker_id;

-- worker_forget --
-- A clean shutdown: this worker leaves the registry.
DELETE FROM {schema}.workers WHERE worker_id = %(worker_id)s;

-- workers_forget_gone --
-- Drop registry rows of workers that are gone and hold no running job: a
-- vanished session (as in rescue), or no heartbeat for three leases.
DELETE FROM {schema}.workers AS w
WHERE w.worker_id <> %(worker_id)s
  AND NOT EXISTS (SELECT 1 FROM {schema}."queue" AS q
                  WHERE q."state" = 'consumed' AND q.lease_owner = w.worker_id)
  AND (w.last_heartbeat_at < now() - 3 * w.lease_seconds * interval '1 second'
       OR (w.backend_start >= pg_postmaster_start_time()
           AND NOT EXISTS (SELECT 1 FROM pg_stat_activity AS a
                           WHERE a.pid = w.backend_pid
                             AND (a.backend_start = w.backend_start
                                  OR a.backend_start IS NULL))));

-- workers_list --
-- The registry, with each worker's liveness and running jobs: alive while its
-- session is open or its last heartbeat is younger than its lease.
SELECT w.worker_id,
       w.host,
       w.pid,
       w.queues,
       w.started_at,
       w.last_heartbeat_at,
       w.backend_pid,
       w.backend_start,
       (EXISTS (SELECT 1 FROM pg_stat_activity AS a
                WHERE a.pid = w.backend_pid
                  AND (a.backend_start = w.backend_start OR a.backend_start IS NULL))
        OR w.last_heartbeat_at > now() - w.lease_seconds * interval '1 second') AS alive,
       (SELECT count(*) FROM {schema}."queue" AS q
        WHERE q."state" = 'consumed' AND q.lease_owner = w.worker_id) AS running
FROM {schema}.workers AS w
ORDER BY w.host, w.pid, w.worker_id;

-- store_result --
-- Keep a result until %(ttl_ms)s ms from now, whether or not its message row
-- exists, unless the storing delivery (if any) lost its message to another.
INSERT INTO {schema}.results AS r (message_key, "result", encoded, expires_at)
SELECT %(message_key)s, %(result)s::jsonb, %(encoded)s::bytea,
       now() + %(ttl_ms)s * interval '1 millisecond'
WHERE %(fence_delivery)s::uuid IS NULL
   OR NOT EXISTS (SELECT 1 FROM {schema}."queue" AS held
                  WHERE held.message_id = %(fence_message)s::uuid
                    AND held.delivery_id IS DISTINCT FROM %(fence_delivery)s::uuid)
ON CONFLICT (message_key) DO UPDATE
SET "result" = EXCLUDED."result",
    encoded = EXCLUDED.encoded,
    stored_at = now(),
    expires_at = EXCLUDED.expires_at;

-- get_result --
-- An unexpired result: from the results table, else from a row dramatiq-pg
-- wrote (its result on the message row).
SELECT "result"::text, encoded
FROM {schema}.results
WHERE message_key = %(message_key)s AND expires_at > now()
UNION ALL
SELECT "result"::text, NULL
FROM {schema}."queue"
WHERE message_id = %(message_id)s::uuid
  AND "result" IS NOT NULL
  AND (result_ttl IS NULL OR result_ttl > now())
LIMIT 1;

-- results_purge_expired --
-- Delete up to %(limit)s expired results; called in a loop.
WITH old AS (
    SELECT message_key
    FROM {schema}.results
    WHERE expires_at < now()
    ORDER BY expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM {schema}.results AS r
USING old
WHERE r.message_key = old.message_key;

-- job_by_id --
-- Everything known about one message, for status lookups.
SELECT message_id::text,
       queue_name,
       message ->> 'actor_name' AS actor_name,
       {schema}.job_state("state"::text, available_at) AS state,
       attempts,
       coalesce((message #>> ARRAY['options', 'retries'])::int, 0) AS retries,
       rescues,
       priority,
       message -> 'kwargs' AS payload,
       last_error,
       enqueued_at,
       available_at,
       started_at,
       finished_at,
       lease_owner,
       lease_expires_at,
       coalesce((SELECT r."result"::text FROM {schema}.results AS r
                 WHERE r.message_key = q.message_id::text AND r.expires_at > now()),
                q."result"::text) AS result
FROM {schema}."queue" AS q
WHERE message_id = %(message_id)s;

-- dead_list --
-- Dead letters, newest first, optionally of one queue.
SELECT message_id::text,
       queue_name,
       message ->> 'actor_name' AS actor_name,
       attempts,
       last_error,
       enqueued_at,
       finished_at
FROM {schema}."queue"
WHERE "state" = 'rejected'
  AND (%(queue_name)s::text IS NULL OR queue_name = %(queue_name)s)
ORDER BY finished_at DESC NULLS LAST, message_id
LIMIT %(limit)s;

-- dead_replay --
-- Send dead letters back to their queue as new: due now, attempts and dramatiq's
-- retry count reset. Filters: one id, or a queue (NULL for all), or an exact
-- last error (NULL for any), in batches.
WITH picked AS (
    SELECT message_id
    FROM {schema}."queue"
    WHERE "state" = 'rejected'
      AND (%(message_id)s::uuid IS NULL OR message_id = %(message_id)s::uuid)
      AND (%(queue_name)s::text IS NULL OR queue_name = %(queue_name)s)
      AND (%(last_error)s::text IS NULL OR last_error = %(last_error)s)
    ORDER BY message_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
replayed AS (
    UPDATE {schema}."queue" AS q
    SET "state" = 'queued',
        message = jsonb_set(
            q.message #- ARRAY['options', 'traceback'] #- ARRAY['options', 'requeue_timestamp'],
            ARRAY['options', 'retries'], '0'),
        attempts = 0,
        rescues = 0,
        available_at = now(),
        started_at = NULL,
        finished_at = NULL,
        lease_owner = NULL,
        lease_expires_at = NULL,
        mtime = now()
    FROM picked
    WHERE q.message_id = picked.message_id
    RETURNING q.message_id::text, q.queue_name
),
woken AS (
    SELECT pg_notify({channel_prefix} || queue_name, '')
    FROM (SELECT DISTINCT queue_name FROM replayed) AS due
)
-- Joined for the same reason as in rescue.
SELECT replayed.message_id, replayed.queue_name
FROM replayed CROSS JOIN (SELECT count(*) FROM woken) AS notified;

-- purge_finished --
-- Delete up to %(limit)s finished messages in one state that finished before
-- the cutoff (queue_finished_idx; cancelled ones by queue_listed_idx);
-- called in a loop so no single statement holds locks for long.
WITH old AS (
    SELECT message_id
    FROM {schema}."queue"
    WHERE "state" = %(state)s::{schema}."state"
      AND finished_at < now() - %(older_than_seconds)s * interval '1 second'
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM {schema}."queue" AS q
USING old
WHERE q.message_id = old.message_id;

-- pending_count --
-- Messages of one queue still waiting, delayed or running (for join()).
SELECT count(*)
FROM {schema}."queue"
WHERE queue_name = %(queue_name)s AND "state" IN ('queued', 'consumed');

-- dead_letters --
-- Dead-lettered messages, oldest first, of one queue or (NULL) of all: the
-- StubBroker's dead_letters and join(fail_fast=True), for tests.
SELECT queue_name, message_id::text, message::text, message_bytes, last_error
FROM {schema}."queue"
WHERE "state" = 'rejected' AND (%(queue_name)s::text IS NULL OR queue_name = %(queue_name)s)
ORDER BY finished_at, message_id;

-- flush --
-- Delete every message of one queue (dramatiq's flush(); tests and admin only).
DELETE FROM {schema}."queue" WHERE queue_name = %(queue_name)s;

-- queue_stats_pending --
-- Waiting, delayed and running jobs per queue, with the age of the oldest job
-- due to run. Two branches, so each reads only its own state: the waiting from
-- the small partial queue_claim_idx (an IN over both states would not match it
-- and scans the whole table), the running from queue_listed_idx's range.
SELECT queue_name,
       CASE WHEN available_at > now() THEN 'delayed' ELSE 'queued' END AS state,
       count(*) AS messages,
       coalesce(extract(epoch FROM now() - min(available_at)), 0)::float8 AS oldest_seconds
FROM {schema}."queue"
WHERE "state" = 'queued'
GROUP BY 1, 2
UNION ALL
SELECT queue_name, 'running', count(*), 0::float8
FROM {schema}."queue"
WHERE "state" = 'consumed'
GROUP BY 1;

-- queue_stats_finished --
-- Done, dead and cancelled jobs kept per queue, read once a minute: most of the
-- table, which PostgreSQL reads whole or through those states' ranges of
-- queue_listed_idx (state, queue, ...), whichever it finds cheaper.
SELECT queue_name,
       CASE WHEN "state" = 'done' THEN 'done' ELSE 'dead' END AS state,
       count(*) AS messages,
       0::float8 AS oldest_seconds
FROM {schema}."queue"
WHERE "state" IN ('done', 'rejected')
GROUP BY 1, 2
UNION ALL
SELECT queue_name, 'cancelled', count(*), 0::float8
FROM {schema}."queue"
WHERE "state" = 'cancelled'
GROUP BY 1;

-- jobs_of_actor --
-- Ids of one actor's jobs, oldest first (the demo and admin use it).
SELECT message_id::text
FROM {schema}."queue"
WHERE message ->> 'actor_name' = %(actor_name)s
ORDER BY enqueued_at, message_id;

-- queue_pause --
-- Stop workers claiming a queue's jobs; running ones finish. Pausing twice keeps
-- the first pause. Returns the queue if it was not paused before.
INSERT INTO {schema}.queue_pauses (queue_name, paused_by)
VALUES (%(queue_name)s, %(paused_by)s)
ON CONFLICT (queue_name) DO NOTHING
RETURNING queue_name;

-- queue_resume --
-- Let workers claim a paused queue again, and wake them at once.
WITH resumed AS (
    DELETE FROM {schema}.queue_pauses WHERE queue_name = %(queue_name)s
    RETURNING queue_name
)
SELECT resumed.queue_name, pg_notify({channel_prefix} || resumed.queue_name, '')
FROM resumed;

-- queue_pauses --
-- Every paused queue, with when and by whom.
SELECT queue_name, paused_at, paused_by
FROM {schema}.queue_pauses
ORDER BY queue_name;

-- job_cancel --
-- Cancel a queued, delayed or running job; returns the state it was in. A
-- running job's worker can no longer renew its lease, finds it cancelled at its
-- next heartbeat and stops it; its ack, nack or retry then change nothing.
WITH target AS (
    SELECT message_id, "state" AS was
    FROM {schema}."queue"
    WHERE message_id = %(message_id)s AND "state" IN ('queued', 'consumed')
    FOR UPDATE
)
UPDATE {schema}."queue" AS q
SET "state" = 'cancelled',
    cancelled_by = %(cancelled_by)s,
    last_error = format('cancelled by %%s', %(cancelled_by)s::text),
    finished_at = now(),
    mtime = now(),
    lease_owner = NULL,
    lease_expires_at = NULL
FROM target
WHERE q.message_id = target.message_id
RETURNING CASE WHEN target.was = 'consumed' THEN 'running'
               WHEN q.available_at > now() THEN 'delayed'
               ELSE 'queued' END;

-- job_run_now --
-- Make a delayed job due now (its retry backoff or delay is skipped) and wake
-- its queue's workers.
WITH due AS (
    UPDATE {schema}."queue"
    SET available_at = now(), mtime = now()
    WHERE message_id = %(message_id)s AND "state" = 'queued' AND available_at > now()
    RETURNING queue_name
)
SELECT due.queue_name, pg_notify({channel_prefix} || due.queue_name, '')
FROM due;

-- job_delete --
-- Delete a job that is not running (cancel a running one first).
DELETE FROM {schema}."queue"
WHERE message_id = %(message_id)s AND "state" <> 'consumed'
RETURNING queue_name;

-- dead_groups --
-- Dead letters grouped by queue and exact last error, largest group first.
SELECT queue_name,
       last_error,
       count(*) AS jobs,
       max(finished_at) AS last_failed_at
FROM {schema}."queue"
WHERE "state" = 'rejected'
GROUP BY queue_name, last_error
ORDER BY count(*) DESC, max(finished_at) DESC NULLS LAST
LIMIT %(limit)s;

-- job_attempts --
-- A job's deliveries that did not succeed, oldest first (written by a trigger).
SELECT attempt, worker, started_at, ended_at, outcome, error, traceback, retry_at
FROM {schema}.job_attempts
WHERE message_id = %(message_id)s
ORDER BY id;

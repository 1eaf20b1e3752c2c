-- enqueue_one() and enqueue_many(): the producers' inserts, as functions, so
-- their plans are cached.
--
-- The enqueue statement (a fence check, an upsert, a NOTIFY per queue) took
-- longer to plan than to run, about 0.7 ms on a queue table with a dozen
-- indexes to weigh, for every send(). A prepared statement would fix that on
-- one connection only, and a producer may sit behind a transaction-mode pooler
-- that runs its next statement on another server session. PL/pgSQL keeps the
-- plans of its statements for the session, whichever client calls it.
--
-- Both are fenced: fence_message and fence_delivery name the delivery of the
-- job that sends (NULL outside a job), and a delivery whose message another
-- delivery holds writes nothing. Both return how many messages they wrote and
-- wake the consumers of each queue written to, delayed messages included (a
-- consumer that hears it reads the queue's next due time).

-- Whether the delivery that sends has lost its message to another delivery
-- (false outside a job: no delivery is named).
CREATE OR REPLACE FUNCTION {schema}.fence_lost(fence_message uuid, fence_delivery uuid)
RETURNS boolean
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    RETURN fence_delivery IS NOT NULL AND EXISTS (
        SELECT FROM {schema}."queue" AS held
        WHERE held.message_id = fence_message
          AND held.delivery_id IS DISTINCT FROM fence_delivery
    );
END
$$;

-- One message, or a retry: an id already stored is re-queued (how Dramatiq's
-- Retries sends a failed message back), a running one only by the delivery
-- that holds it, and a cancelled job never.
CREATE OR REPLACE FUNCTION {schema}.enqueue_one(
    new_message_id uuid,
    new_queue_name text,
    new_message jsonb,
    new_message_bytes bytea,
    new_priority smallint,
    delay_ms integer,
    new_last_error text,
    fence_message uuid,
    fence_delivery uuid
) RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    written integer;
BEGIN
    IF {schema}.fence_lost(fence_message, fence_delivery) THEN
        RETURN 0;
    END IF;

    INSERT INTO {schema}."queue" AS q
        (message_id, queue_name, "state", message, message_bytes, priority, available_at,
         last_error, delivery_id)
    VALUES (new_message_id, new_queue_name, 'queued', new_message, new_message_bytes,
            new_priority, now() + delay_ms * interval '1 millisecond', new_last_error,
            -- A retry carries its delivery, so the conflict below can check it.
            CASE WHEN new_message_id = fence_message THEN fence_delivery END)
    ON CONFLICT (message_id) DO UPDATE
    SET "state" = 'queued',
        queue_name = EXCLUDED.queue_name,
        message = EXCLUDED.message,
        message_bytes = EXCLUDED.message_bytes,
        priority = EXCLUDED.priority,
        available_at = EXCLUDED.available_at,
        last_error = coalesce(EXCLUDED.last_error, q.last_error),
        lease_owner = NULL,
        lease_expires_at = NULL,
        mtime = now()
    WHERE (EXCLUDED.delivery_id IS NULL AND q."state" NOT IN ('consumed', 'cancelled'))
       OR (q."state" = 'consumed' AND q.delivery_id = EXCLUDED.delivery_id);
    GET DIAGNOSTICS written = ROW_COUNT;

    IF written > 0 THEN
        PERFORM pg_notify({channel_prefix} || new_queue_name, '');
    END IF;
    RETURN written;
END
$$;

-- New messages in bulk (send_many): the columns as arrays of one length, one
-- element a message (unnest is far cheaper to parse than a VALUES list). No
-- upsert: an id that is already stored fails the whole call.
CREATE OR REPLACE FUNCTION {schema}.enqueue_many(
    message_ids uuid[],
    queue_names text[],
    messages jsonb[],
    messages_bytes bytea[],
    priorities smallint[],
    delays_ms integer[],
    last_errors text[],
    fence_message uuid,
    fence_delivery uuid
) RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    written integer;
    woken text[];
BEGIN
    IF {schema}.fence_lost(fence_message, fence_delivery) THEN
        RETURN 0;
    END IF;

    WITH enqueued AS (
        INSERT INTO {schema}."queue" AS q
            (message_id, queue_name, "state", message, message_bytes, priority,
             available_at, last_error)
        SELECT i.message_id, i.queue_name, 'queued', i.message, i.message_bytes,
               i.priority, now() + i.delay_ms * interval '1 millisecond', i.last_error
        FROM unnest(message_ids, queue_names, messages, messages_bytes, priorities,
                    delays_ms, last_errors)
             AS i(message_id, queue_name, message, message_bytes, priority, delay_ms,
                  last_error)
        RETURNING q.queue_name
    )
    SELECT count(*), array_agg(DISTINCT enqueued.queue_name) INTO written, woken
    FROM enqueued;

    PERFORM pg_notify({channel_prefix} || queue_name, '') FROM unnest(woken) AS queue_name;
    RETURN written;
END
$$;

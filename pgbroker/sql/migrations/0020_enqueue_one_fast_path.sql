-- enqueue_one() without a query when no delivery sends (the common case, a
-- producer outside a job): 0018's called fence_lost(), whose EXISTS is a
-- query of its own, for every send. Otherwise as in 0018.

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
    -- Outside a job (no delivery named) without calling fence_lost(), whose
    -- EXISTS runs as a query even when it has nothing to check.
    IF fence_delivery IS NOT NULL THEN
        IF {schema}.fence_lost(fence_message, fence_delivery) THEN
            RETURN 0;
        END IF;
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

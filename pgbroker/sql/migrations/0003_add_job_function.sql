-- add_job(): enqueue from SQL, inside the caller's own transaction, as
-- graphile-worker's add_job() does. Producers outside Python (the portal's
-- Next.js API) call it in the transaction that creates the bug report, so the
-- job exists exactly when the row does. The NOTIFY fires at commit.
--
--   SELECT dramatiq.add_job('process-bug-report', 'process_bug_report',
--                           '{{"bug_report_id": "..."}}');
--
-- (Braces are doubled here because {schema} is filled in by Python.)
-- The payload is checked by the worker: one that does not match the actor's
-- model is dead-lettered at once, with the validation error.

CREATE OR REPLACE FUNCTION {schema}.add_job(
    queue text,
    actor text,
    payload jsonb DEFAULT '{{}}',
    run_after interval DEFAULT interval '0',
    priority smallint DEFAULT 0,
    message_options jsonb DEFAULT '{{}}'
) RETURNS uuid
LANGUAGE plpgsql
AS $$
#variable_conflict use_variable
DECLARE
    new_id uuid := gen_random_uuid();
    channel text := {channel_prefix} || queue;
BEGIN
    IF payload IS NULL OR jsonb_typeof(payload) <> 'object' THEN
        RAISE EXCEPTION 'add_job: payload must be a JSON object, got %', jsonb_typeof(payload)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- NOTIFY channels are identifiers: longer than 63 bytes would be truncated.
    IF octet_length(channel) > 63 THEN
        RAISE EXCEPTION 'add_job: queue name % is too long', queue
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    INSERT INTO {schema}."queue"
        (message_id, queue_name, "state", message, priority, available_at)
    VALUES (
        new_id, queue, 'queued',
        jsonb_build_object(
            'queue_name', queue,
            'actor_name', actor,
            'args', '[]'::jsonb,
            'kwargs', payload,
            'options', coalesce(message_options, '{{}}'::jsonb),
            'message_id', new_id::text,
            'message_timestamp', (extract(epoch FROM now()) * 1000)::bigint
        ),
        priority,
        now() + run_after
    );

    IF run_after <= interval '0' THEN
        PERFORM pg_notify(channel, '');
    END IF;
    RETURN new_id;
END
$$;

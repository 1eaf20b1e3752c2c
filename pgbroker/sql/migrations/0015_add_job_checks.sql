-- add_job() checks what only the Python producer checked before: a payload
-- over the size limit, and message options. SQL producers (the portal) may
-- not set dramatiq's execution options (time_limit, max_retries, retries,
-- eta, pipe_target, ...): those come from each job type's policy, and a
-- producer that could raise them could make a job run for days or forever.
-- No option is accepted today: "allowed" below is where one would be listed.

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
    -- The Python producer's limit (pgbroker/encoding.py, MAX_MESSAGE_BYTES).
    max_bytes constant integer := 1048576;
    allowed constant text[] := ARRAY[]::text[];
    refused text;
BEGIN
    IF payload IS NULL OR jsonb_typeof(payload) <> 'object' THEN
        RAISE EXCEPTION 'add_job: payload must be a JSON object, got %', jsonb_typeof(payload)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(payload::text) > max_bytes THEN
        RAISE EXCEPTION 'add_job: payload is % bytes, over the % byte limit',
            octet_length(payload::text), max_bytes
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'store large data elsewhere and send its id';
    END IF;
    IF message_options IS NOT NULL AND jsonb_typeof(message_options) <> 'object' THEN
        RAISE EXCEPTION 'add_job: message_options must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT string_agg(key, ', ' ORDER BY key) INTO refused
    FROM jsonb_object_keys(coalesce(message_options, '{{}}'::jsonb)) AS key
    WHERE key <> ALL (allowed);
    IF refused IS NOT NULL THEN
        RAISE EXCEPTION 'add_job: message options % are not accepted from SQL', refused
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'retries, time limits and delays come from the job type''s policy; '
                         'use run_after and priority';
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
            'options', '{{}}'::jsonb,
            'message_id', new_id::text,
            'message_timestamp', (extract(epoch FROM now()) * 1000)::bigint
        ),
        priority,
        now() + run_after
    );

    -- Delayed ones too: a waiting consumer reads the new due time and sleeps
    -- until it instead of finding the job at its next poll.
    PERFORM pg_notify(channel, '');
    RETURN new_id;
END
$$;

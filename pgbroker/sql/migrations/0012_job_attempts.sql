-- Every delivery that did not end in success, for a job's history: the error
-- and traceback of each failed attempt, rescues, cancellations. The queue row
-- keeps only the latest error; a trigger keeps the rest, so no producer or
-- worker query changes and the happy path pays nothing: the WHEN clause is
-- checked in C and matches only when a running job leaves "consumed" for
-- anything but "done" (a retry, a dead letter, a rescue, a cancel). A job
-- handed back unstarted at shutdown (attempts given back) is not an attempt.

CREATE TABLE IF NOT EXISTS {schema}.job_attempts (
    id bigserial PRIMARY KEY,
    message_id uuid NOT NULL,
    attempt integer NOT NULL,
    -- The lease owner (host:pid:nonce) that ran it.
    worker text,
    started_at timestamptz,
    ended_at timestamptz NOT NULL DEFAULT now(),
    -- failed (retried at retry_at), dead (no retry left), rescued (its worker
    -- was lost), cancelled (an operator stopped it).
    outcome text NOT NULL CHECK (outcome IN ('failed', 'dead', 'rescued', 'cancelled')),
    error text,
    traceback text,
    retry_at timestamptz
);

CREATE INDEX IF NOT EXISTS job_attempts_message_idx
    ON {schema}.job_attempts (message_id, id);

CREATE OR REPLACE FUNCTION {schema}.job_attempt_ended() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    rescued boolean := NEW.rescues > OLD.rescues;
    outcome text := CASE
        WHEN NEW."state"::text = 'cancelled' THEN 'cancelled'
        WHEN NEW.rescues > OLD.rescues THEN 'rescued'
        WHEN NEW."state"::text = 'rejected' THEN 'dead'
        ELSE 'failed' END;
BEGIN
    INSERT INTO {schema}.job_attempts
        (message_id, attempt, worker, started_at, outcome, error, traceback, retry_at)
    VALUES (
        NEW.message_id, OLD.attempts, OLD.lease_owner, OLD.started_at, outcome,
        CASE WHEN rescued THEN format('worker %s stopped renewing its lease', OLD.lease_owner)
             WHEN outcome = 'cancelled' THEN format('cancelled by %s', NEW.cancelled_by)
             ELSE NEW.last_error END,
        -- Dramatiq's Retries puts the failure's traceback in the message options.
        CASE WHEN outcome IN ('failed', 'dead') THEN NEW.message #>> ARRAY['options', 'traceback'] END,
        CASE WHEN NEW."state"::text = 'queued' THEN NEW.available_at END
    );
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS queue_attempt_ended ON {schema}."queue";
CREATE TRIGGER queue_attempt_ended
    AFTER UPDATE ON {schema}."queue"
    FOR EACH ROW
    WHEN (OLD."state" = 'consumed' AND NEW."state" <> 'consumed' AND NEW."state" <> 'done'
          AND NEW.attempts >= OLD.attempts)
    EXECUTE FUNCTION {schema}.job_attempt_ended();

-- Deleting jobs (retention, delete, flush) deletes their history, once per
-- statement over the deleted rows, instead of a foreign key's check per row
-- (and TRUNCATE of the queue stays possible).
CREATE OR REPLACE FUNCTION {schema}.job_attempts_forget() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    DELETE FROM {schema}.job_attempts AS a USING gone WHERE a.message_id = gone.message_id;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS queue_attempts_forget ON {schema}."queue";
CREATE TRIGGER queue_attempts_forget
    AFTER DELETE ON {schema}."queue"
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT
    EXECUTE FUNCTION {schema}.job_attempts_forget();

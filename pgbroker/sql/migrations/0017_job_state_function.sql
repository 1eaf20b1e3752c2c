-- A job's state as people and the API name it, from the row's stored state:
-- queued (due now) or delayed (due later), running (consumed), done, dead
-- (rejected), cancelled: for the queries that show one job's or a page of
-- jobs' state. (Counting queries keep their own CASE, shaped for index-only scans.)
-- A single-SELECT SQL function: the planner inlines it, so it costs what the
-- CASE it replaces cost.
CREATE OR REPLACE FUNCTION {schema}.job_state(stored text, available_at timestamptz)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN stored = 'queued' AND available_at > now() THEN 'delayed'
        WHEN stored = 'queued' THEN 'queued'
        WHEN stored = 'consumed' THEN 'running'
        WHEN stored = 'done' THEN 'done'
        WHEN stored = 'cancelled' THEN 'cancelled'
        ELSE 'dead'
    END
$$;

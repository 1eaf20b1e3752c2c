-- One index entry less for every finished job. A state change rewrites the
-- row in a new place (state is in the partial indexes' predicates, so no
-- update is HOT), and every index whose predicate the new row meets gets an
-- entry: a job wrote 18 on its way from queued to done, 7 of them at its
-- finish. queue_finished_age_idx (state, mtime) found finished rows for
-- retention, and queue_finished_at_idx (finished_at) the charts' last hour:
-- one index on (state, finished_at) serves both, retention now going by
-- finished_at, which every finish sets.
--
-- The dashboard's three enqueued_at indexes cost an entry each at every state
-- change too, but each keeps a job-list filter from scanning the whole table:
-- without queue_enqueued_idx, a search for an error text no done job has
-- read every done job (2 s at a million, against 13 ms).
--
-- bench/drain_profile.py measures what a job costs (WAL records, CPU).

-- Rows finished before this project wrote finished_at (plain dramatiq-pg's
-- done and rejected rows) would otherwise never age out. Every cancel has
-- set it.
UPDATE {schema}."queue"
SET finished_at = mtime
WHERE "state" IN ('done', 'rejected') AND finished_at IS NULL;

DROP INDEX IF EXISTS {schema}.queue_finished_age_idx;
DROP INDEX IF EXISTS {schema}.queue_finished_at_idx;

-- Retention deletes one state's rows past an age; the charts read the last
-- hour of done and dead jobs from the index alone (INCLUDE).
CREATE INDEX IF NOT EXISTS queue_finished_idx
    ON {schema}."queue" ("state", finished_at) INCLUDE (queue_name, started_at)
    WHERE "state" IN ('done', 'rejected');

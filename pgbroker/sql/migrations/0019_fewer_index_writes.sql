-- Fewer index entries per job. A state change rewrites the row in a new
-- place (state is in the partial indexes' predicates, so no update is HOT),
-- and every index whose predicate the new row meets gets an entry: a job
-- wrote 18 on its way from queued to done. Four indexes served queries that
-- others can serve:
--
-- * queue_enqueued_idx (enqueued_at, message_id) ordered the dashboard's job
--   list when no queue or state is chosen: an entry at each of a job's three
--   writes. That list is now a merge of the newest of each state, read from
--   queue_state_enqueued_idx (web/sql/dashboard.sql, job_list_all). An error
--   search would then read every done job (none has an error: 2 s at a
--   million), so jobs with an error have an index of their own,
--   queue_errored_idx, which only failing jobs write to.
-- * queue_finished_age_idx (state, mtime) found finished rows for retention,
--   and queue_finished_at_idx (finished_at) the charts' last hour. One index
--   on (state, finished_at) serves both, retention now going by finished_at,
--   which every finish sets: an entry less at every finish.
-- * queue_due_idx (queue, due time) gave a consumer its queue's next due
--   time after each claim: an entry at every enqueue. The claim now reads it
--   from queue_claim_idx, the first due time past now() of each priority
--   (pgbroker/sql/queries.sql, claim), a few index descents a claim.
--
-- A job now writes 13 entries: 4 when it is sent, 4 when it is claimed and 5
-- when it finishes.
--
-- Like every migration this runs in one transaction, and the table takes no
-- writes until it commits (the new indexes are built over the finished rows):
-- 0.9 s at a million kept jobs (bench/web_bench.py's table).
--
-- bench/drain_profile.py measures what a job costs (WAL records, CPU).

-- Rows finished before this project wrote finished_at (plain dramatiq-pg's
-- done and rejected rows) would otherwise never age out. Every cancel has
-- set it. Before the drops: queue_finished_at_idx finds them.
UPDATE {schema}."queue"
SET finished_at = mtime
WHERE "state" IN ('done', 'rejected') AND finished_at IS NULL;

DROP INDEX IF EXISTS {schema}.queue_enqueued_idx;
DROP INDEX IF EXISTS {schema}.queue_due_idx;
DROP INDEX IF EXISTS {schema}.queue_finished_age_idx;
DROP INDEX IF EXISTS {schema}.queue_finished_at_idx;

-- Retention deletes one state's rows past an age; the charts read the last
-- hour of done and dead jobs from the index alone (INCLUDE).
CREATE INDEX IF NOT EXISTS queue_finished_idx
    ON {schema}."queue" ("state", finished_at) INCLUDE (queue_name, started_at)
    WHERE "state" IN ('done', 'rejected');

-- The job list's error search, newest first per state (job_list_all, and
-- job_list with a state).
CREATE INDEX IF NOT EXISTS queue_errored_idx
    ON {schema}."queue" ("state", enqueued_at, message_id)
    WHERE last_error IS NOT NULL;

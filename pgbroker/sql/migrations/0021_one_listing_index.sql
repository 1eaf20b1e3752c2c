-- Fewer index entries per job, again (see 0019_fewer_index_writes.sql: no
-- update is HOT, and every index whose predicate the new row meets gets an
-- entry at each write). Two full indexes ordered the dashboard's job list,
-- one for a queue filter (queue_queue_enqueued_idx) and one for a state
-- filter (queue_state_enqueued_idx), each an entry at each of a job's three
-- writes; queue_finished_count_idx (queue, state) counted done and dead jobs
-- per queue, an entry at every finish; and queue_lease_idx (lease_expires_at)
-- found running jobs for the rescuer, an entry at every claim.
--
-- One index on (state, queue, enqueued_at, id) does all four: the job list
-- reads the newest page of each (state, queue) pair its filters allow, in
-- this index's order, and merges them (web/sql/dashboard.sql, job_list); the
-- finished counts are a scan of its done and dead ranges; and its consumed
-- range holds the running jobs, as few as the workers' threads, which the
-- rescuer sorts by lease itself.
--
-- A job now writes 8 entries, not 13: 3 when it is sent, 2 when it is claimed
-- and 3 when it finishes. bench/drain_profile.py measures what that saves.
--
-- The job list's error search reads the jobs with an error of each (state,
-- queue) pair too, so queue_errored_idx, which only such jobs write to, now
-- has the queue after the state.
--
-- The new indexes are built over the kept jobs in this migration's
-- transaction, during which the table takes no reads or writes (DROP INDEX
-- locks it): 2.9 s at a million kept jobs (with 0022, on the 2-core machine of
-- README's performance section).

CREATE INDEX IF NOT EXISTS queue_listed_idx
    ON {schema}."queue" ("state", queue_name, enqueued_at, message_id);

DROP INDEX IF EXISTS {schema}.queue_queue_enqueued_idx;
DROP INDEX IF EXISTS {schema}.queue_state_enqueued_idx;
DROP INDEX IF EXISTS {schema}.queue_finished_count_idx;
DROP INDEX IF EXISTS {schema}.queue_lease_idx;

DROP INDEX IF EXISTS {schema}.queue_errored_idx;
CREATE INDEX queue_errored_idx
    ON {schema}."queue" ("state", queue_name, enqueued_at, message_id)
    WHERE last_error IS NOT NULL;

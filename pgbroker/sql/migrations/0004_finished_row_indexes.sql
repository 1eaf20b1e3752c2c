-- Index finished rows only. dramatiq-pg's (state, mtime) index covered every
-- row, so each enqueue paid for an entry that only retention ever reads.
-- Retention deletes by state and age; metrics count finished rows per queue
-- with an index-only scan instead of reading millions of heap rows.

DROP INDEX IF EXISTS {schema}.queue_state_mtime_idx;

CREATE INDEX IF NOT EXISTS queue_finished_age_idx
    ON {schema}."queue" ("state", mtime)
    WHERE "state" IN ('done', 'rejected');

CREATE INDEX IF NOT EXISTS queue_finished_count_idx
    ON {schema}."queue" (queue_name, "state")
    WHERE "state" IN ('done', 'rejected');

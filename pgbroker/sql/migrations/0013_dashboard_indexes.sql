-- What the dashboard's job list and charts read at a million kept jobs. The
-- list pages by keyset on (enqueued_at, message_id), newest first; with a
-- queue or state filter it reads the matching index in order and stops at the
-- page size instead of sorting every match. Each index costs enqueues a little
-- (bench/web_bench.py and bench/broker_bench.py measure both).

CREATE INDEX IF NOT EXISTS queue_enqueued_idx
    ON {schema}."queue" (enqueued_at, message_id);

CREATE INDEX IF NOT EXISTS queue_queue_enqueued_idx
    ON {schema}."queue" (queue_name, enqueued_at, message_id);

CREATE INDEX IF NOT EXISTS queue_state_enqueued_idx
    ON {schema}."queue" ("state", enqueued_at, message_id);

-- Throughput, failures and run times of the last hour, read from the index
-- alone (INCLUDE): at a few thousand jobs a minute, visiting the heap for each
-- finished row made the overview's charts take a second.
CREATE INDEX IF NOT EXISTS queue_finished_at_idx
    ON {schema}."queue" (finished_at) INCLUDE (queue_name, "state", started_at)
    WHERE "state" IN ('done', 'rejected');

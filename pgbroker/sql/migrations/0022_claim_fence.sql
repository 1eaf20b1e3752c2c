-- Claims commit without waiting for their WAL to reach the disk: the claim
-- sets synchronous_commit off for its own transaction (pgbroker/sql/queries.sql,
-- claim), which saves a WAL flush a claim and drains about a third faster
-- (bench/drain_profile.py). Every other write still waits for its flush: an
-- ack is durable before its job counts as done.
--
-- A crash of the server (or of its machine, or a failover) can then lose a
-- claim whose worker already runs the job: the row is queued again, and a
-- second worker could start the job beside the first. Hence this fence, an
-- unlogged table, which PostgreSQL empties after a crash and on a promoted
-- standby but keeps across a clean restart. Its one row says from when claims
-- may take jobs. While it is missing, or its time is still ahead, no claim
-- takes any. The heartbeat puts it back after a crash a lease ahead (the
-- longest of any registered worker): by then every live worker has renewed
-- its leases and stopped the jobs whose claim was lost (renew_leases finds
-- them 'taken'), or, cut off, given up those it could not renew (while every
-- worker reaches the server at the same address, as for the rescue).
--
-- A fresh schema, and a clean restart, open at once.
--
-- A worker of an older release claims without looking at the fence. While
-- one is registered (a rolling deploy), claims stay durable: each worker's
-- heartbeat marks its registry row fence_aware, and a claim commits without
-- waiting for its flush only while every registered worker's row is.

CREATE UNLOGGED TABLE IF NOT EXISTS {schema}.claims_open (
    -- One row at most.
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    since timestamptz NOT NULL
);

INSERT INTO {schema}.claims_open (since) VALUES ('-infinity') ON CONFLICT DO NOTHING;

ALTER TABLE {schema}.workers ADD COLUMN IF NOT EXISTS fence_aware boolean NOT NULL DEFAULT false;

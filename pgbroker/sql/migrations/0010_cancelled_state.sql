-- Cancelled: an operator stopped the job (queued, delayed or running). It is
-- finished and never retried, and it is not a dead letter, so "retry all dead"
-- does not bring it back. ADD VALUE may run inside the migration's
-- transaction, but nothing may use the new value before that commits: the
-- migrations after this one compare "state"::text where they must.

ALTER TYPE {schema}."state" ADD VALUE IF NOT EXISTS 'cancelled';

ALTER TABLE {schema}."queue"
    -- Who cancelled it ("admin" from the dashboard, or a CLI user).
    ADD COLUMN IF NOT EXISTS cancelled_by text;

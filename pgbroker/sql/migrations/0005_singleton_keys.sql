-- Singleton jobs (pg-boss's singletonKey / singletonSeconds): a message sent
-- with the option singleton_key is not enqueued while another job with that key
-- is queued or running on its queue, nor twice in one singleton_slot (a time
-- window, or a scheduler tick). Enforced by unique indexes, so it holds for
-- concurrent producers too.

ALTER TABLE {schema}."queue"
    ADD COLUMN IF NOT EXISTS singleton_key text,
    ADD COLUMN IF NOT EXISTS singleton_slot bigint;

CREATE UNIQUE INDEX IF NOT EXISTS queue_singleton_live_idx
    ON {schema}."queue" (queue_name, singleton_key)
    WHERE singleton_key IS NOT NULL AND "state" IN ('queued', 'consumed');

CREATE UNIQUE INDEX IF NOT EXISTS queue_singleton_slot_idx
    ON {schema}."queue" (queue_name, singleton_key, singleton_slot)
    WHERE singleton_key IS NOT NULL AND singleton_slot IS NOT NULL;

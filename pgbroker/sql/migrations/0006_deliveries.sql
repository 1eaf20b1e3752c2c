-- Per-delivery fencing, binary messages and due-time lookups.
--
-- delivery_id: a fresh token for every claim. Ack, nack, renew, requeue and
-- everything a running job writes through the broker (retries, results,
-- follow-up messages) name it, so a delivery whose lease was taken (rescued
-- after a cut, or re-queued by its own retry) can no longer change the row.
-- It stays on the row after the delivery finishes (and on a row its own retry
-- re-queued), so a heartbeat can tell "taken by another" from "done"; the
-- next claim or a rescue replaces it.
ALTER TABLE {schema}."queue"
    ADD COLUMN IF NOT EXISTS delivery_id uuid,
    -- The message as Dramatiq's encoder wrote it, when that is not a JSON
    -- object (pickle, msgpack): "message" then holds only the routing fields.
    ADD COLUMN IF NOT EXISTS message_bytes bytea;

-- The next due time of a queue, read after every claim so a consumer sleeps
-- exactly until then: the first entry past now() in (queue, due time) order.
CREATE INDEX IF NOT EXISTS queue_due_idx
    ON {schema}."queue" (queue_name, available_at)
    WHERE "state" = 'queued';

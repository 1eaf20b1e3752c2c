-- Results in a table of their own, keyed by Dramatiq's message key, so a
-- result is kept whether or not its message row still exists (flushed, purged,
-- or sent through another broker). dramatiq-pg's "result" and "result_ttl"
-- columns of the queue stay, and are still read for rows written by it.
CREATE TABLE IF NOT EXISTS {schema}.results (
    message_key text PRIMARY KEY,
    -- JSON results stay readable from SQL; other encoders' bytes go to "encoded".
    "result" jsonb,
    encoded bytea,
    stored_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CHECK (("result" IS NULL) <> (encoded IS NULL))
);

-- Retention deletes expired results in batches, oldest first.
CREATE INDEX IF NOT EXISTS results_expires_idx ON {schema}.results (expires_at);

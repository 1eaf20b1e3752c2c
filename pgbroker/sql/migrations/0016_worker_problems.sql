-- What is wrong with a live worker process, if anything: dead worker threads,
-- a dead or hung consumer (pgbroker/health.py). Written on every heartbeat;
-- NULL while it is well. The health checks of its host read it.
ALTER TABLE {schema}.workers ADD COLUMN IF NOT EXISTS problem text;

-- The registry of live worker processes: one row per process, written at boot
-- and on every heartbeat, deleted at a clean shutdown. It is a plain table on
-- purpose: the CLI (`pts-jobs workers`), the metrics and a dashboard read it.
--
-- Each worker keeps one session open (its heartbeat session) and records that
-- session's backend pid and start time. While the server keeps running, a
-- session that has vanished from pg_stat_activity means the process is dead
-- (SIGKILL, OOM, crash: the kernel closes its sockets), so its jobs go back at
-- once instead of waiting for their lease. Leases stay the fallback for what
-- keeps a session open without a process behind it: network cuts, frozen hosts.
CREATE TABLE IF NOT EXISTS {schema}.workers (
    -- The worker's name on the leases it takes (queue.lease_owner).
    worker_id text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    -- Queues it consumes.
    queues text[] NOT NULL DEFAULT '{{}}',
    started_at timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at timestamptz NOT NULL DEFAULT now(),
    -- The lease this worker takes, in seconds: past it, a silent worker is gone.
    lease_seconds double precision NOT NULL,
    -- Its heartbeat session: pg_stat_activity.pid and .backend_start.
    backend_pid integer NOT NULL,
    backend_start timestamptz NOT NULL
);

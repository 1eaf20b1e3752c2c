-- The pipeline's queries, each under a "-- name --" header. {schema} is the
-- quoted pipeline schema; literal braces are doubled.

-- repo_link_insert --
-- Link a repository (a git URL or a local path) and its branch.
INSERT INTO {schema}.repo_links (url, branch)
VALUES (%(url)s, %(branch)s)
RETURNING id;

-- repo_link_get --
SELECT * FROM {schema}.repo_links WHERE id = %(id)s;

-- bug_report_insert --
-- A report as the intake receives it: RECEIVED, not parsed yet.
INSERT INTO {schema}.bug_reports (raw_text, raw_payload, reporter_email, repo_link_id)
VALUES (%(raw_text)s, %(raw_payload)s, %(reporter_email)s, %(repo_link_id)s)
RETURNING id;

-- bug_report_lock --
-- The report, locked until commit: two runs of the same job take turns.
SELECT * FROM {schema}.bug_reports WHERE id = %(id)s FOR UPDATE;

-- bug_report_get --
SELECT * FROM {schema}.bug_reports WHERE id = %(id)s;

-- bug_report_parsed --
-- Store what parsing found; link the report to the first one with its
-- fingerprint, if another came first.
UPDATE {schema}.bug_reports AS b
SET status = 'PARSED',
    title = %(title)s,
    description = %(description)s,
    steps_to_reproduce = %(steps_to_reproduce)s,
    expected_behavior = %(expected_behavior)s,
    actual_behavior = %(actual_behavior)s,
    error_type = %(error_type)s,
    error_message = %(error_message)s,
    stack_frames = %(stack_frames)s,
    page_url = %(page_url)s,
    environment = %(environment)s,
    severity = %(severity)s,
    fingerprint = %(fingerprint)s,
    duplicate_of = (
        SELECT first.id FROM {schema}.bug_reports AS first
        WHERE first.fingerprint = %(fingerprint)s AND first.id <> b.id
        ORDER BY first.created_at, first.id
        LIMIT 1
    ),
    invalid_reason = NULL,
    parsed_at = now()
WHERE id = %(id)s
RETURNING *;

-- bug_report_invalid --
UPDATE {schema}.bug_reports
SET status = 'INVALID', invalid_reason = %(reason)s, parsed_at = now()
WHERE id = %(id)s;

-- knowledge_latest --
-- The repository's most recent analysis, if any.
SELECT * FROM {schema}.codebase_knowledge
WHERE repo_link_id = %(repo_link_id)s
ORDER BY analyzed_at DESC, id
LIMIT 1;

-- knowledge_get --
SELECT * FROM {schema}.codebase_knowledge WHERE id = %(id)s;

-- knowledge_store --
-- One row per analysed commit; analysing the same commit again refreshes it.
INSERT INTO {schema}.codebase_knowledge
    (repo_link_id, commit_sha, base_commit_sha, full_analysis, triggered_by, languages,
     manifests, test_command, layout, changed_files, skipped)
VALUES (%(repo_link_id)s, %(commit_sha)s, %(base_commit_sha)s, %(full_analysis)s,
        %(triggered_by)s, %(languages)s, %(manifests)s, %(test_command)s, %(layout)s,
        %(changed_files)s, %(skipped)s)
ON CONFLICT (repo_link_id, commit_sha) DO UPDATE
SET base_commit_sha = EXCLUDED.base_commit_sha,
    full_analysis = EXCLUDED.full_analysis,
    triggered_by = EXCLUDED.triggered_by,
    languages = EXCLUDED.languages,
    manifests = EXCLUDED.manifests,
    test_command = EXCLUDED.test_command,
    layout = EXCLUDED.layout,
    changed_files = EXCLUDED.changed_files,
    skipped = EXCLUDED.skipped,
    analyzed_at = now()
RETURNING id;

-- fix_job_insert --
INSERT INTO {schema}.fix_jobs (bug_report_id, repo_link_id, codebase_knowledge_id)
VALUES (%(bug_report_id)s, %(repo_link_id)s, %(codebase_knowledge_id)s)
RETURNING id;

-- fix_job_get --
SELECT * FROM {schema}.fix_jobs WHERE id = %(id)s;

-- fix_job_prepare --
-- A new attempt begins: count it, note its sandbox, clear the last error.
UPDATE {schema}.fix_jobs
SET status = 'preparing',
    attempts = attempts + 1,
    sandbox_path = %(sandbox_path)s,
    heartbeat_at = now(),
    started_at = coalesce(started_at, now()),
    error = NULL
WHERE id = %(id)s
RETURNING attempts;

-- fix_job_running --
UPDATE {schema}.fix_jobs SET status = 'running', heartbeat_at = now() WHERE id = %(id)s;

-- fix_job_heartbeat --
-- While the fixer runs; a finished job is left as it is.
UPDATE {schema}.fix_jobs SET heartbeat_at = now()
WHERE id = %(id)s AND status IN ('preparing', 'running');

-- fix_job_succeeded --
UPDATE {schema}.fix_jobs
SET status = 'succeeded', patch = %(patch)s, logs = %(logs)s, test_outcome = %(test_outcome)s,
    pr_url = %(pr_url)s, error = NULL, heartbeat_at = NULL, finished_at = now()
WHERE id = %(id)s;

-- fix_job_attempt_failed --
-- This attempt failed; the job waits for its retry (or is marked failed).
UPDATE {schema}.fix_jobs
SET status = CASE WHEN %(final)s THEN 'failed' ELSE 'queued' END,
    error = %(error)s, logs = %(logs)s, heartbeat_at = NULL,
    finished_at = CASE WHEN %(final)s THEN now() END
WHERE id = %(id)s;

-- fix_job_step --
-- One line of the fix job's log of steps.
INSERT INTO {schema}.fix_job_steps (fix_job_id, attempt, step, detail)
VALUES (%(id)s, %(attempt)s, %(step)s, %(detail)s);

-- notification_hold --
-- Take the notification's row (created if new), locked until commit, so two
-- runs of the same job cannot both send it.
WITH created AS (
    INSERT INTO {schema}.notifications (dedupe_key, type, bug_report_id, recipient_email)
    VALUES (%(dedupe_key)s, %(type)s, %(bug_report_id)s, %(recipient_email)s)
    ON CONFLICT (dedupe_key) DO NOTHING
)
SELECT 1;

-- notification_lock --
SELECT * FROM {schema}.notifications WHERE dedupe_key = %(dedupe_key)s FOR UPDATE;

-- notification_done --
UPDATE {schema}.notifications
SET status = %(status)s, subject = %(subject)s, body = %(body)s,
    attempts = attempts + 1, sent_at = CASE WHEN %(status)s = 'sent' THEN now() END
WHERE dedupe_key = %(dedupe_key)s;

-- fix_job_states --
-- The sweeper: status of each fix job, and whether its heartbeat is older than
-- the bound (by this server's clock, not the sweeper's).
SELECT id::text AS id, status,
       coalesce(heartbeat_at, started_at, created_at) < now() - %(bound)s::interval AS stale
FROM {schema}.fix_jobs
WHERE id = ANY(%(ids)s::uuid[]);

-- The dashboard's reads of the pipeline's tables ({schema} is the pipeline
-- schema): what a job page links to.

-- bug_report --
SELECT id::text, status, title, severity, reporter_email, error_type, error_message,
       invalid_reason, duplicate_of::text, created_at, parsed_at
FROM {schema}.bug_reports
WHERE id = %(id)s::uuid;

-- fix_jobs_of_bug --
SELECT id::text, status, attempts, pr_url, created_at, finished_at
FROM {schema}.fix_jobs
WHERE bug_report_id = %(id)s::uuid
ORDER BY created_at DESC
LIMIT 20;

-- fix_job --
SELECT id::text, bug_report_id::text, status, attempts, sandbox_path, heartbeat_at, patch,
       right(logs, 20000) AS logs, test_outcome, pr_url, error, created_at, started_at,
       finished_at
FROM {schema}.fix_jobs
WHERE id = %(id)s::uuid;

-- fix_job_steps --
SELECT attempt, step, detail, at
FROM {schema}.fix_job_steps
WHERE fix_job_id = %(id)s::uuid
ORDER BY id
LIMIT 500;

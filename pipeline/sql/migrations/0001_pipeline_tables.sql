-- The pipeline's own tables: what the five handlers read and write. The
-- portal's tables are not ours to read, so these hold what Phase 0 needs.

CREATE TABLE IF NOT EXISTS {schema}.repo_links (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- A git URL, or a local path (tests, self-hosted mirrors).
    url text NOT NULL CHECK (url <> ''),
    branch text NOT NULL DEFAULT 'main' CHECK (branch <> ''),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS {schema}.bug_reports (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status text NOT NULL DEFAULT 'RECEIVED'
        CHECK (status IN ('RECEIVED', 'PARSED', 'INVALID')),
    -- What was received: free text, the intake form's JSON, or both.
    raw_text text,
    raw_payload jsonb,
    reporter_email text,
    repo_link_id uuid REFERENCES {schema}.repo_links (id),
    -- What parsing found.
    title text,
    description text,
    steps_to_reproduce jsonb,
    expected_behavior text,
    actual_behavior text,
    error_type text,
    error_message text,
    stack_frames jsonb,
    page_url text,
    environment jsonb,
    severity text CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    -- Hash of the normalised error; equal fingerprints are the same bug.
    fingerprint text,
    duplicate_of uuid REFERENCES {schema}.bug_reports (id),
    invalid_reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    parsed_at timestamptz
);
CREATE INDEX IF NOT EXISTS bug_reports_fingerprint_idx
    ON {schema}.bug_reports (fingerprint, created_at) WHERE fingerprint IS NOT NULL;

CREATE TABLE IF NOT EXISTS {schema}.codebase_knowledge (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    repo_link_id uuid NOT NULL REFERENCES {schema}.repo_links (id),
    commit_sha text NOT NULL,
    -- The commit an incremental analysis started from (NULL for a full one).
    base_commit_sha text,
    full_analysis boolean NOT NULL,
    triggered_by text NOT NULL CHECK (triggered_by IN ('link', 'webhook', 'manual')),
    -- {{"Python": {{"files": 3, "lines": 120}}, ...}} (braces doubled for {schema})
    languages jsonb NOT NULL,
    manifests jsonb NOT NULL,
    test_command text,
    layout jsonb NOT NULL,
    changed_files jsonb,
    analyzed_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (repo_link_id, commit_sha)
);

CREATE TABLE IF NOT EXISTS {schema}.fix_jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    bug_report_id uuid NOT NULL REFERENCES {schema}.bug_reports (id),
    repo_link_id uuid NOT NULL REFERENCES {schema}.repo_links (id),
    codebase_knowledge_id uuid NOT NULL REFERENCES {schema}.codebase_knowledge (id),
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'preparing', 'running', 'succeeded', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    sandbox_path text,
    -- Renewed while the fixer runs: a stale heartbeat on a running fix means
    -- its worker died (the queue's lease then hands the job to another).
    heartbeat_at timestamptz,
    patch text,
    logs text,
    test_outcome text CHECK (test_outcome IN ('passed', 'failed', 'not_run')),
    pr_url text,
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz
);

CREATE TABLE IF NOT EXISTS {schema}.fix_job_steps (
    id bigserial PRIMARY KEY,
    fix_job_id uuid NOT NULL REFERENCES {schema}.fix_jobs (id),
    attempt integer NOT NULL,
    step text NOT NULL,
    detail text,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS fix_job_steps_job_idx ON {schema}.fix_job_steps (fix_job_id, id);

CREATE TABLE IF NOT EXISTS {schema}.notifications (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- One notification per (type, bug report, fix job): a retried or
    -- duplicated job finds the row and does not send again.
    dedupe_key text NOT NULL UNIQUE,
    type text NOT NULL
        CHECK (type IN ('bug_received', 'fix_started', 'pr_created', 'fix_failed')),
    bug_report_id uuid NOT NULL,
    recipient_email text NOT NULL,
    subject text,
    body text,
    -- pending: being sent (or a send was cut off); sent: the SMTP server took
    -- it; recorded: no SMTP server configured, kept here only.
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'recorded')),
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz
);

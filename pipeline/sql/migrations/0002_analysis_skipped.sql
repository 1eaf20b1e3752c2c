-- What an analysis did not read, and why: symlinks (never followed), files
-- over the per-file cap, paths past the analysis's read budget.
-- {{"files": {{"path": "reason", ...}}, "more": <paths not listed>}}
ALTER TABLE {schema}.codebase_knowledge
    ADD COLUMN IF NOT EXISTS skipped jsonb NOT NULL DEFAULT '{{}}';

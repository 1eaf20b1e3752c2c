"""The bug-fixing pipeline's work, called by the actors: one module per stage.

``parsing`` (pure) and ``bug_reports`` for process-bug-report, ``codebase`` for
analyze-codebase, ``fixes`` for execute-fix and cleanup-container,
``notifications`` for send-notification; ``db`` runs their SQL
(``sql/queries.sql``) on the pipeline's tables (``sql/migrations``); ``config``,
``errors`` and ``commands`` are what they share. Nothing here imports the job
layer: functions take a database and their configuration and return what to
send next; the actors send it.
"""

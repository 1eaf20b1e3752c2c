"""The job types. ``dramatiq actors`` imports this package to run them all.

One module per job type (payload model and actor); ``base`` holds what they
share and ``runtime`` what they hand the pipeline. Importing the broker first
binds every actor to it.
"""

import broker  # noqa: F401  (sets the global broker before any actor is declared)

from .analyze_codebase import analyze_codebase
from .cleanup_container import cleanup_container
from .execute_fix import execute_fix
from .process_bug_report import process_bug_report
from .prune_jobs import prune_jobs
from .send_notification import send_notification
from .sweep_sandboxes import sweep_sandboxes

__all__ = [
    "analyze_codebase",
    "cleanup_container",
    "execute_fix",
    "process_bug_report",
    "prune_jobs",
    "send_notification",
    "sweep_sandboxes",
]

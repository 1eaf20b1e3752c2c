"""Worker module that imports prometheus_client before anything of ours.

Dramatiq's own middleware exported no metric at all in that case.
"""

import prometheus_client  # noqa: F401  (first, on purpose)

import tests.support.workload  # noqa: F401

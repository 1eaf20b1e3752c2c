"""Where the fixer (untrusted code) runs: a container per attempt, or a
restricted process; the checkout it works on and the patch taken from it.

``config`` (what to run with), ``layout`` (a fix job's directories),
``checkout`` (prepare, patch), ``runtime`` (the contract), ``container`` and
``process`` (the two runtimes), ``report`` (output and report, capped and
checked), ``sweeper`` (what finished fix jobs left).
"""

from .config import Limits, SandboxConfig
from .layout import SandboxLayout
from .report import FixerReport
from .runtime import FixerResult, FixerRun, Runtime, SandboxError, choose_runtime

__all__ = [
    "FixerReport",
    "FixerResult",
    "FixerRun",
    "Limits",
    "Runtime",
    "SandboxConfig",
    "SandboxError",
    "SandboxLayout",
    "choose_runtime",
]

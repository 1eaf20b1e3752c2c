"""analyze-codebase: clone or fetch a linked repository and describe it.

One analysis per repository at a time: sends are singletons on
``analyze-<repoLinkId>`` for 5 minutes (the spec's singletonKey), enforced in
PostgreSQL; a second send returns the first job's id.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pipeline.codebase import analyze

from . import runtime
from .base import Payload, job

SINGLETON_SECONDS = 5 * 60


class AnalyzeCodebase(Payload):
    repo_link_id: UUID
    # False: only what changed since the last analysed commit.
    full_analysis: bool = True
    triggered_by: Literal["link", "webhook", "manual"] = "manual"


def singleton(payload: AnalyzeCodebase) -> tuple[str, int]:
    return f"analyze-{payload.repo_link_id}", SINGLETON_SECONDS


@job("analyze_codebase", AnalyzeCodebase, singleton=singleton, store_results=True)
def analyze_codebase(payload: AnalyzeCodebase) -> dict:
    run = runtime.current()
    return analyze(run.db, run.pipeline, str(payload.repo_link_id),
                   full_analysis=payload.full_analysis, triggered_by=payload.triggered_by)

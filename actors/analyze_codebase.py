"""analyze-codebase: analyse a linked repository."""

from __future__ import annotations

import logging
from typing import Literal
from uuid import UUID

from .base import Payload, job

logger = logging.getLogger(__name__)


class AnalyzeCodebase(Payload):
    repo_link_id: UUID
    # False: only what changed since the last analysed commit.
    full_analysis: bool = True
    triggered_by: Literal["link", "webhook", "manual"] = "manual"


@job("analyze_codebase", AnalyzeCodebase, store_results=True)
def analyze_codebase(payload: AnalyzeCodebase) -> dict:
    logger.info(
        "analysing repository link %s (full=%s, triggered by %s)",
        payload.repo_link_id, payload.full_analysis, payload.triggered_by,
    )
    return {"repo_link_id": str(payload.repo_link_id), "full_analysis": payload.full_analysis}

"""Acceptance tests: what users deploy (the worker image, the compose stack),
built from the committed checkout and run on a real Docker engine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.docker_support import (
    MEASURED,
    committed_tree,
    docker,
    image_size_mb,
    require_docker,
)


@pytest.fixture(scope="session")
def docker_engine() -> None:
    require_docker()


@pytest.fixture(scope="session")
def source_tree(docker_engine, tmp_path_factory) -> Path:
    return committed_tree(tmp_path_factory.mktemp("checkout"))


@pytest.fixture(scope="session")
def worker_image(source_tree) -> Iterator[str]:
    """Dockerfile.worker built from the committed tree, as `docker build` does it."""
    tag = "pts-jobs-worker:acceptance"
    started = time.monotonic()
    docker("build", "-q", "-f", "Dockerfile.worker", "-t", tag, ".", cwd=source_tree, timeout=1200)
    MEASURED["worker image build"] = f"{time.monotonic() - started:.1f} s"
    MEASURED["worker image size"] = f"{image_size_mb(tag):.0f} MB"
    yield tag


def pytest_terminal_summary(terminalreporter) -> None:
    if MEASURED:
        terminalreporter.section("deployment measurements")
        for name, value in MEASURED.items():
            terminalreporter.write_line(f"{name}: {value}")

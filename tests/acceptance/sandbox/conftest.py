"""Fixtures of the sandbox tests: the Docker engine, the test image, a harness
per runtime (``sandbox`` runs each test against both).

The Docker ones need an engine, and the process runtime's root: without
them they skip on a laptop and fail in CI (``tests.support.require``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.sandbox import SandboxConfig
from pipeline.sandbox.container import docker_client
from pipeline.sandbox.runtime import SandboxError
from tests.support import require
from tests.support.sandbox import Harness, build_test_image


@pytest.fixture(scope="session")
def docker():
    try:
        return docker_client(SandboxConfig(workspace_dir=Path("/nonexistent")))
    except SandboxError as error:
        require(False, str(error))


@pytest.fixture(scope="session")
def fixer_image(docker) -> str:
    return build_test_image(docker)


@pytest.fixture
def workspace(tmp_path) -> Path:
    return tmp_path / "workspace"


@pytest.fixture(params=["docker", "process"])
def sandbox(request, workspace) -> Iterator[Harness]:
    """A harness for each runtime: every test that takes it runs against both."""
    if request.param == "docker":
        harness = Harness("docker", workspace, request.getfixturevalue("docker"),
                          request.getfixturevalue("fixer_image"))
    else:
        require(os.geteuid() == 0, "the process runtime's full confinement needs root")
        harness = Harness("process", workspace, None, None)
    yield harness
    harness.close()

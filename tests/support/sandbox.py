"""The fixer's sandbox under test: a harness that runs one fixer as a fix
attempt would (prepared checkout, runtime, report), the test image, and ways
to look for a fixer's processes on the host.

The attacking fixers are in ``tests/fixers/attacks/``; in the test image they
are at ``/opt/fixers/attacks`` (``tests/fixers`` at ``/opt/fixers``).
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pipeline.sandbox import FixerResult, FixerRun, Limits, SandboxConfig, SandboxLayout
from pipeline.sandbox import checkout as sandbox_checkout
from pipeline.sandbox.container import DockerRuntime
from pipeline.sandbox.process import ProcessRuntime
from tests.support.environment import FIXERS, ROOT
from tests.support.pipeline import make_repo

ATTACKS = FIXERS / "attacks"
TEST_IMAGE = "pts-fixer:test"
IMAGE_FIXERS = "/opt/fixers"


def _tar(files: dict[str, bytes | Path]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files.items():
            data = content.read_bytes() if isinstance(content, Path) else content
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if name.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def build_test_image(docker) -> str:
    """The committed Dockerfile.fixer, plus ``tests/fixers`` at /opt/fixers."""
    base = _tar({"Dockerfile": ROOT / "Dockerfile.fixer"})
    docker.images.build(fileobj=base, custom_context=True, tag="pts-fixer:test-base", rm=True)
    files: dict[str, bytes | Path] = {
        "Dockerfile": f"FROM pts-fixer:test-base\nCOPY fixers {IMAGE_FIXERS}\n".encode()}
    files.update({f"fixers/{p.relative_to(FIXERS)}": p for p in FIXERS.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts})
    docker.images.build(fileobj=_tar(files), custom_context=True, tag=TEST_IMAGE, rm=True)
    return TEST_IMAGE


def small_limits(**changes) -> Limits:
    values = dict(memory=256 * 2**20, cpus=1.0, pids=64, tmpfs=16 * 2**20, file_size=2**28)
    values.update(changes)
    return Limits(**values)  # type: ignore[arg-type]


def processes_with(needle: str) -> list[int]:
    """Host pids (not zombies) with ``needle`` as one of their arguments."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if needle.encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


@dataclass
class Attempt:
    result: FixerResult
    layout: SandboxLayout
    commit: str
    seconds: float


class Harness:
    """Runs one attack as a fix attempt would: prepared checkout, runtime, report."""

    def __init__(self, kind: str, workspace: Path, docker, image: str | None) -> None:
        self.kind, self.workspace, self.docker, self.image = kind, workspace, docker, image
        self.cache = make_repo(workspace / "repos" / str(uuid.uuid4()))
        self.commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=self.cache, check=True,
                                     capture_output=True, text=True).stdout.strip()
        self.jobs: list[str] = []

    def config(self, **overrides) -> SandboxConfig:
        return SandboxConfig(workspace_dir=self.workspace, runtime=self.kind,  # type: ignore[arg-type]
                             image=self.image or "unused", **overrides)

    def runtime(self, config: SandboxConfig):
        if self.kind == "docker":
            return DockerRuntime(config, self.docker)
        return ProcessRuntime(config)

    def command(self, script: str, *args: str) -> tuple[str, ...]:
        where = f"{IMAGE_FIXERS}/attacks" if self.kind == "docker" else str(ATTACKS)
        return ("python3", f"{where}/{script}", *args)

    def prepare(self, fix_job_id: str | None = None) -> SandboxLayout:
        fix_job_id = fix_job_id or str(uuid.uuid4())
        self.jobs.append(fix_job_id)
        layout = SandboxLayout.of(self.workspace / "sandboxes", fix_job_id)
        sandbox_checkout.prepare(layout, self.cache, self.commit, timeout=60)
        layout.bug_report.write_text('{"title": "add() subtracts"}')
        return layout

    def run(self, script: str, *args: str, seconds: float = 30, layout: SandboxLayout | None
            = None, **config) -> Attempt:
        layout = layout or self.prepare()
        runtime = self.runtime(self.config(**config))
        started = time.monotonic()
        result = runtime.run(FixerRun(layout.fix_job_id, 1, self.command(script, *args), layout,
                                      started + seconds))
        return Attempt(result, layout, self.commit, time.monotonic() - started)

    def close(self) -> None:
        for job in self.jobs:
            self.runtime(self.config()).cleanup(job)
            SandboxLayout.of(self.workspace / "sandboxes", job).remove()



# A worker, in a process of its own, running one fixer until it is SIGKILLed.
WORKER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.support.sandbox import Harness
from pipeline.sandbox import FixerRun, SandboxLayout
harness = Harness.__new__(Harness)
harness.kind, harness.workspace, harness.image = {kind!r}, Path({workspace!r}), {image!r}
if harness.kind == "docker":
    from pipeline.sandbox.container import docker_client
    harness.docker = docker_client(harness.config())
layout = SandboxLayout(Path({layout!r}))
runtime = harness.runtime(harness.config())
runtime.run(FixerRun(layout.fix_job_id, 1, harness.command("sleep_forever.py", {marker!r}),
                     layout, time.monotonic() + 600))
"""

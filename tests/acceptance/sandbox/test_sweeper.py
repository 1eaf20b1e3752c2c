"""The sweeper removes what finished or abandoned fix jobs left, and nothing else."""

from __future__ import annotations

import random
import subprocess
import sys
import time

from pipeline.sandbox import SandboxConfig
from pipeline.sandbox.container import (
    LABEL_JOB,
    LABEL_ROLE,
    LABEL_SANDBOXES,
    ROLE,
    DockerRuntime,
)
from pipeline.sandbox.sweeper import JobState, sweep
from tests.support import wait_for
from tests.support.environment import ROOT
from tests.support.sandbox import WORKER, processes_with


def start_abandoned_fixer(sandbox, marker: str):
    """A fixer left running by a worker that was SIGKILLed."""
    layout = sandbox.prepare()
    worker = subprocess.Popen([sys.executable, "-c", WORKER.format(
        root=str(ROOT), kind=sandbox.kind, workspace=str(sandbox.workspace),
        image=sandbox.image, layout=str(layout.root), marker=marker)],
        cwd=ROOT, start_new_session=True)
    wait_for(lambda: processes_with(marker), timeout=30, what="the fixer to start")
    worker.kill()
    worker.wait()
    return layout


def test_the_sweeper_removes_a_finished_or_abandoned_jobs_leftovers_past_the_bound(sandbox):
    marker = f"{900 + random.random():.6f}"
    abandoned = start_abandoned_fixer(sandbox, marker) if sandbox.kind == "docker" \
        else sandbox.prepare()
    finished, live, orphan = sandbox.prepare(), sandbox.prepare(), sandbox.prepare()
    states = {abandoned.fix_job_id: JobState("running", stale=True),
              finished.fix_job_id: JobState("failed", stale=False),
              live.fix_job_id: JobState("running", stale=False)}  # orphan: no row
    runtime = sandbox.runtime(sandbox.config(sweep_after=60.0))
    config = sandbox.config(sweep_after=60.0)

    young = sweep(runtime, config, lambda ids: states)
    assert young.containers == () and young.sandboxes == ()  # not older than the bound yet

    later = sweep(runtime, config, lambda ids: states, now=lambda: time.time() + 120)

    assert set(later.sandboxes) == {abandoned.fix_job_id, finished.fix_job_id,
                                    orphan.fix_job_id}
    assert later.kept == 1 and live.root.exists()
    if sandbox.kind == "docker":
        assert later.containers == (abandoned.fix_job_id,)
        assert abandoned.fix_job_id not in runtime.leftovers()
        assert not processes_with(marker)


def test_a_deployment_sweeps_and_cleans_only_its_own_containers(docker, fixer_image, tmp_path):
    # Two deployments (staging and production, say) on one Docker engine.
    ours = DockerRuntime(SandboxConfig(workspace_dir=tmp_path / "ours"), docker)
    theirs = docker.containers.create(fixer_image, ["sleep", "60"], labels={
        LABEL_ROLE: ROLE, LABEL_JOB: "their-fix-job",
        LABEL_SANDBOXES: str(tmp_path / "theirs" / "sandboxes")})
    try:
        assert "their-fix-job" not in ours.leftovers()
        assert ours.cleanup("their-fix-job") == []
        theirs.reload()  # still there
    finally:
        theirs.remove(force=True)

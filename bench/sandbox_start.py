"""What a sandbox costs per fix attempt: the fixer is ``true``, so what is timed
is the runtime's own overhead (create, attach, start, wait, inspect, remove a
container; or spawn the confined process), and the checkout and patch around it.

    .venv/bin/python -m bench.sandbox_start --runs 10 [--image pts-fixer:latest]

Prints the median and the spread of each, per runtime. Build the image first:
``docker build -t pts-fixer:latest - < Dockerfile.fixer``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from pipeline.sandbox import FixerRun, SandboxConfig, SandboxLayout
from pipeline.sandbox import checkout as sandbox_checkout
from pipeline.sandbox.container import DockerRuntime, docker_client
from pipeline.sandbox.process import ProcessRuntime


def make_cache(root: Path) -> tuple[Path, str]:
    cache = root / "repos" / "bench"
    cache.mkdir(parents=True)
    (cache / "app.py").write_text("def add(a, b):\n    return a - b\n")
    env = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com",
           "PATH": "/usr/bin:/bin"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "bench"]):
        subprocess.run(["git", *args], cwd=cache, env=env, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cache, capture_output=True,
                            text=True, check=True).stdout.strip()
    return cache, commit


def measure(runtime, config: SandboxConfig, cache: Path, commit: str, runs: int) -> dict:
    timings: dict[str, list[float]] = {"prepare": [], "run": [], "patch": []}
    for _ in range(runs):
        layout = SandboxLayout.of(config.sandboxes_dir, str(uuid.uuid4()))
        started = time.perf_counter()
        sandbox_checkout.prepare(layout, cache, commit, timeout=60)
        prepared = time.perf_counter()
        result = runtime.run(FixerRun(layout.fix_job_id, 1, ("true",), layout,
                                      time.monotonic() + 60))
        ran = time.perf_counter()
        sandbox_checkout.patch(layout, commit, timeout=60)
        timings["patch"].append(time.perf_counter() - ran)
        timings["prepare"].append(prepared - started)
        timings["run"].append(ran - prepared)
        assert result.exit_code == 0, result.output
        layout.remove()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--image", default="pts-fixer:latest")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        cache, commit = make_cache(root)
        config = SandboxConfig(workspace_dir=root, image=args.image)
        runtimes = [("docker", DockerRuntime(config, docker_client(config))),
                    ("process", ProcessRuntime(config))]
        for name, runtime in runtimes:
            measure(runtime, config, cache, commit, 1)
            timings = measure(runtime, config, cache, commit, args.runs)
            print(f"{name:8s}" + "  ".join(
                f"{step} median {statistics.median(v) * 1000:6.0f} ms "
                f"(min {min(v) * 1000:.0f}, max {max(v) * 1000:.0f})"
                for step, v in timings.items()))


if __name__ == "__main__":
    main()

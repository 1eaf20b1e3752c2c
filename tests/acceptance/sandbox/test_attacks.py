"""Fixers written to attack, against both runtimes (``sandbox`` is parametrized).

Where the process runtime cannot stop an attack, the test says so and checks
what it does stop; the README's table lists both.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.sandbox import FixerRun
from pipeline.sandbox import checkout as sandbox_checkout
from pipeline.sandbox.container import LABEL_JOB
from tests.support import require, wait_for
from tests.support.environment import DATABASE_URL, ROOT
from tests.support.sandbox import ATTACKS, WORKER, Harness, processes_with, small_limits


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def host_addresses() -> list[str]:
    """Loopback and this machine's other addresses (the Docker bridge's among them)."""
    addresses = {"127.0.0.1"}
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout
    addresses.update(a for a in out.split() if ":" not in a)
    return sorted(addresses)


def test_the_fixer_sees_no_secret_of_the_worker_in_its_environment_or_proc(
        sandbox, monkeypatch):
    monkeypatch.setenv("JOBS_ADMIN_TOKEN", "admin-token-7f3a")
    monkeypatch.setenv("JOBS_SMTP_URL", "smtp://u:smtp-pass-91c2@mail.example")

    attempt = sandbox.run("steal_secrets.py", "admin-token-7f3a", "smtp-pass-91c2",
                          DATABASE_URL, "JOBS_")

    assert attempt.result.exit_code == 0, attempt.result.output
    seen = last_json(attempt.result.output)
    assert seen["found"] == {}
    assert seen["pids_seen"] < 10  # its own processes only, not the host's


def test_the_fixer_sees_the_allow_listed_variables_and_nothing_more(sandbox):
    attempt = sandbox.run("steal_secrets.py", "MODEL_API_KEY",
                          extra_env=(("MODEL_API_KEY", "k-123"),))

    found = last_json(attempt.result.output)["found"]
    assert {k: v for k, v in found.items() if k.startswith("env:")} == {
        "env:MODEL_API_KEY": "k-123"}


def test_the_fixer_cannot_open_a_connection_to_postgresql_or_anywhere(sandbox):
    with socket.create_connection(("127.0.0.1", 5432), timeout=2):
        pass  # the worker can: the database is there
    listener = socket.create_server(("0.0.0.0", 0))  # a server of the host's, as a collector
    listener.setblocking(False)
    port = listener.getsockname()[1]

    with listener:
        attempt = sandbox.run("open_network.py", *(f"{a}:{port}" for a in host_addresses()))
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected

    assert attempt.result.exit_code == 0, attempt.result.output
    assert last_json(attempt.result.output)["reached"] == []


def test_the_fixer_cannot_read_another_sandbox_or_the_repository_cache(sandbox):
    other = sandbox.prepare()
    (other.checkout / "secret.txt").write_text("another tenant's code")
    other.hand_to(4242, 4242)  # as an earlier job's fixer left it
    cached = sandbox.cache / "src" / "app.py"

    attempt = sandbox.run("read_others.py", str(other.checkout / "secret.txt"),
                          str(other.bug_report), str(cached),
                          str(sandbox.workspace / "repos" / "x"))

    assert attempt.result.exit_code == 0, attempt.result.output
    assert last_json(attempt.result.output)["read"] == {}


def test_hooks_and_config_left_in_the_checkout_never_run_in_the_worker(sandbox, tmp_path):
    marker = tmp_path / "pwned"
    before = sorted(p.name for p in (sandbox.cache / ".git" / "hooks").iterdir())

    attempt = sandbox.run("plant_git.py", str(marker))
    assert attempt.result.exit_code == 0, attempt.result.output
    patch = sandbox_checkout.patch(attempt.layout, attempt.commit, timeout=60)

    assert not marker.exists()
    assert "PWNED" not in patch
    assert "-    return a - b\n+    return a + b" in patch  # the real diff, not an external one
    assert ".gitattributes" in patch
    # The cache was never reachable: no hook was added there.
    assert sorted(p.name for p in (sandbox.cache / ".git" / "hooks").iterdir()) == before
    subprocess.run(["git", "status"], cwd=sandbox.cache, check=True, capture_output=True)
    assert not marker.exists()


def test_the_fixer_is_stopped_at_its_time_limit_with_every_process_it_started(sandbox):
    seconds = f"{900 + random.random():.6f}"  # a sleep only this test starts

    attempt = sandbox.run("outlive.py", seconds, seconds=3)

    assert attempt.result.timed_out and not attempt.result.succeeded
    assert "time limit" in attempt.result.failure()
    assert attempt.seconds < 3 + 10
    wait_for(lambda: not processes_with(seconds), timeout=5, what="every sleep to be gone")
    if sandbox.kind == "docker":
        assert sandbox.docker.api.containers(
            all=True, filters={"label": f"{LABEL_JOB}={attempt.layout.fix_job_id}"}) == []


def test_the_fixer_hits_its_memory_limit_with_a_clear_failure(sandbox):
    attempt = sandbox.run("eat_memory.py", limits=small_limits(memory=128 * 2**20))

    assert not attempt.result.succeeded
    assert "memory" in attempt.result.failure()
    assert "128 MiB" in attempt.result.failure()


def test_the_fixer_hits_its_process_limit_with_a_clear_failure_even_exiting_zero(sandbox):
    attempt = sandbox.run("fork_many.py", limits=small_limits(pids=32))

    assert "fork refused" in attempt.result.output
    assert not attempt.result.succeeded
    assert "process limit (32)" in attempt.result.failure()


def resident_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_stdout_flood_keeps_the_last_bytes_without_growing_the_worker(sandbox):
    peak = [resident_kib()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak.append(resident_kib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        attempt = sandbox.run("flood_stdout.py", "300", output_limit=100_000)
    finally:
        stop.set()
        sampler.join()

    result = attempt.result
    assert result.exit_code == 0
    assert result.output_cut and result.output.startswith("[output cut: the fixer wrote")
    assert result.output.rstrip().endswith("the last line")
    assert len(result.output) < 101_000
    assert attempt.layout.output.stat().st_size <= 2 * 100_000 + 65536
    assert max(peak) - peak[0] < 40 * 1024, f"worker grew by {max(peak) - peak[0]} KiB"


def test_a_fifo_report_is_refused_without_blocking_the_worker(sandbox):
    attempt = sandbox.run("fifo_report.py", "fifo", seconds=20)

    assert attempt.result.exit_code == 0
    assert attempt.seconds < 10
    assert attempt.result.report.problems == ("report is not a regular file: ignored",)


def test_a_report_linked_to_a_host_file_is_not_read(sandbox, tmp_path):
    secret = tmp_path / "host-secret.json"
    secret.write_text('{"pr_url": "https://leak.example/secret", "tests": "passed"}')

    attempt = sandbox.run("fifo_report.py", "link", str(secret))

    assert attempt.result.report.pr_url is None
    assert attempt.result.report.problems == ("report is a symbolic link: ignored",)


def test_nul_bytes_and_an_overlong_pr_url_are_cleaned_not_fatal(sandbox):
    attempt = sandbox.run("bad_report.py")

    report = attempt.result.report
    assert attempt.result.exit_code == 0
    assert report.pr_url is None and report.tests == "passed"
    assert "\x00" not in (report.summary or "") and "\x00" not in attempt.result.output
    assert any("pr_url is longer" in p for p in report.problems)


def test_a_worker_killed_mid_fix_leaves_nothing_the_next_attempt_does_not_remove_first(
        sandbox):
    marker = f"{900 + random.random():.6f}"
    layout = sandbox.prepare()
    worker = subprocess.Popen([sys.executable, "-c", WORKER.format(
        root=str(ROOT), kind=sandbox.kind, workspace=str(sandbox.workspace),
        image=sandbox.image, layout=str(layout.root), marker=marker)],
        cwd=ROOT, start_new_session=True)
    runtime = sandbox.runtime(sandbox.config())
    try:
        wait_for(lambda: processes_with(marker), timeout=30, what="the fixer to start")
    finally:
        os.killpg(worker.pid, 9)
        worker.wait()

    if sandbox.kind == "process":
        # The kernel ends the fixer with its worker (parent-death signal, PID namespace).
        wait_for(lambda: not processes_with(marker), timeout=5, what="the fixer to die")
        return
    # A container outlives its worker: the next attempt removes it before it runs.
    assert layout.fix_job_id in runtime.leftovers()
    sandbox_checkout.prepare(layout, sandbox.cache, sandbox.commit, timeout=60)
    attempt = sandbox.run("steal_secrets.py", marker, layout=layout)
    assert attempt.result.exit_code == 0
    assert not processes_with(marker)
    assert layout.fix_job_id not in runtime.leftovers()


def test_every_attack_is_run_by_a_test():
    used = {p.name for p in ATTACKS.glob("*.py")}
    source = "".join(p.read_text() for p in Path(__file__).parent.glob("*.py"))
    source += (ROOT / "tests/support/sandbox.py").read_text()
    assert {name for name in used if f'"{name}"' not in source} == set()


@pytest.mark.parametrize("kind", ["docker"])
def test_the_container_is_locked_down(kind, docker, fixer_image, workspace):
    del kind
    harness = Harness("docker", workspace, docker, fixer_image)
    layout = harness.prepare()
    config = harness.config()
    runtime = harness.runtime(config)
    spec = runtime._spec(FixerRun(layout.fix_job_id, 1, ("true",), layout,
                                  time.monotonic() + 60))
    assert spec["read_only"] and spec["cap_drop"] == ["ALL"]
    assert spec["security_opt"] == ["no-new-privileges"] and spec["network_mode"] == "none"
    assert not spec["user"].startswith("0")
    assert [m["Source"] for m in spec["mounts"]] == [str(layout.work)]
    harness.close()


class Interrupted(Exception):
    """Stands for TimeLimitExceeded and the broker's lost-lease stop: both are
    raised in the job's thread, asynchronously, as this is."""


def test_an_exception_raised_in_the_running_thread_stops_the_fixer_with_everything_it_started(
        sandbox):
    import ctypes

    marker = f"{900 + random.random():.6f}"
    layout = sandbox.prepare()
    outcome: list[BaseException] = []

    def job() -> None:
        try:
            sandbox.run("outlive.py", marker, seconds=120, layout=layout)
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=job)
    thread.start()
    wait_for(lambda: len(processes_with(marker)) > 5, timeout=30, what="the fixer's children")
    assert thread.ident is not None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                               ctypes.py_object(Interrupted))
    thread.join(timeout=30)

    assert not thread.is_alive() and [type(e) for e in outcome] == [Interrupted]
    wait_for(lambda: not processes_with(marker), timeout=5, what="every process to be gone")
    if sandbox.kind == "docker":
        assert sandbox.docker.api.containers(
            all=True, filters={"label": f"{LABEL_JOB}={layout.fix_job_id}"}) == []


def test_a_checkout_swapped_for_a_link_to_a_host_directory_is_never_read(sandbox, tmp_path):
    host = tmp_path / "host-secrets"
    host.mkdir()
    (host / "shadow").write_text("root:secret-hash")

    attempt = sandbox.run("swap_checkout.py", str(host))

    assert attempt.result.exit_code == 0, attempt.result.output
    with pytest.raises(sandbox_checkout.PatchError, match="no longer a directory"):
        sandbox_checkout.patch(attempt.layout, attempt.commit, timeout=60)


def test_a_fixer_silent_for_longer_than_the_engine_clients_timeout_keeps_its_output(
        docker, fixer_image, workspace):
    import docker as docker_sdk

    from pipeline.sandbox.container import DockerRuntime

    harness = Harness("docker", workspace, docker, fixer_image)
    layout = harness.prepare()
    client = docker_sdk.from_env(timeout=1)
    try:
        result = DockerRuntime(harness.config(), client).run(FixerRun(
            layout.fix_job_id, 1, ("sh", "-c", "echo early; sleep 3; echo late"), layout,
            time.monotonic() + 30))
    finally:
        client.close()
        harness.close()

    assert result.exit_code == 0 and result.output == "early\nlate\n"


def test_a_fixer_installed_under_tmp_still_starts_and_cannot_change_itself(workspace, tmp_path):
    # The process runtime puts a fresh tmpfs over /tmp; the fixer's own program
    # (a checkout or virtualenv there, as in a CI clone) is put back read-only.
    require(os.geteuid() == 0, "the process runtime's full confinement needs root")
    program = tmp_path / "opt" / "fixer.py"
    program.parent.mkdir()
    program.write_text(
        "import pathlib, sys\n"
        "print('fixer under /tmp ran')\n"
        "try:\n"
        "    pathlib.Path(sys.argv[0]).write_text('tampered')\n"
        "    print('rewrote itself')\n"
        "except OSError as error:\n"
        "    print('read-only:', error.errno)\n")
    program.chmod(0o755)
    source = program.read_text()
    sandbox = Harness("process", workspace, None, None)
    try:
        layout = sandbox.prepare()
        result = sandbox.runtime(sandbox.config()).run(FixerRun(
            layout.fix_job_id, 1, (sys.executable, str(program)), layout,
            time.monotonic() + 30))
    finally:
        sandbox.close()

    assert "fixer under /tmp ran" in result.output, result.output
    assert "read-only: 30" in result.output  # EROFS
    assert program.read_text() == source

"""The sandbox's pure parts: capped output, the report's checks, the layout, config."""

from __future__ import annotations

import gc
import os
import re
import socket
import uuid

import pytest

from pipeline.sandbox import SandboxConfig, SandboxLayout
from pipeline.sandbox.container import docker_client
from pipeline.sandbox.report import CappedOutput, clean_text, parse_report, read_report
from pipeline.sandbox.runtime import SandboxError
from settings import SandboxSettings


def test_capped_output_keeps_the_last_bytes_and_says_it_was_cut(tmp_path):
    output = CappedOutput(tmp_path / "out.log", limit=1000)
    for i in range(500):
        output.write(f"line {i:04d}\n".encode())

    text = output.text()
    output.close()

    assert text.startswith("[output cut: the fixer wrote 5000 bytes; the last 1000 are kept]")
    assert text.endswith("line 0499\n")
    assert (tmp_path / "out.log").stat().st_size <= 2000


def test_capped_output_drops_at_once_a_chunk_larger_than_the_cap(tmp_path):
    output = CappedOutput(tmp_path / "out.log", limit=100)
    output.write(b"x" * 10_000 + b"END")
    assert output.text().endswith("x" * 97 + "END") and output.cut
    output.close()


def test_output_under_the_cap_is_kept_whole_and_not_marked(tmp_path):
    output = CappedOutput(tmp_path / "out.log", limit=100)
    output.write(b"hello\n")
    output.close()
    assert output.text() == "hello\n" and not output.cut


def test_clean_text_replaces_nul_control_and_undecodable_bytes_keeping_lines():
    assert clean_text(b"a\x00b\xffc\r\n\td\x1b[31m") == "a\ufffdb\ufffdc\r\n\td\ufffd[31m"


def test_a_good_report_is_read_field_by_field():
    report = parse_report(b'{"pr_url": "https://git.example/p/1", "tests": "passed",'
                          b' "summary": "fixed"}')
    assert (report.pr_url, report.tests, report.summary, report.problems) == (
        "https://git.example/p/1", "passed", "fixed", ())


@pytest.mark.parametrize(("document", "problem"), [
    (b'{"pr_url": "javascript:alert(1)"}', "pr_url is not an https URL: ignored"),
    (b'{"pr_url": "https://a.example/\\u0000x"}', "pr_url is not an https URL: ignored"),
    (b'{"pr_url": "https://a.example/' + b"a" * 600 + b'"}', "pr_url is longer than 500"),
    (b'{"pr_url": 12}', "pr_url is not a string: ignored"),
    (b'{"tests": "all green"}', "tests must be one of passed, failed, not_run: ignored"),
    (b'{"summary": ["x"]}', "summary is not a string: ignored"),
    (b"[1, 2]", "report is not a JSON object"),
    (b"\xff\xfe{", "report is not valid JSON"),
])
def test_a_bad_field_is_dropped_and_named_never_fatal(document, problem):
    report = parse_report(document)
    assert report.pr_url is None and report.tests == "not_run"
    assert any(p.startswith(problem) for p in report.problems), report.problems


def test_a_summary_with_nul_bytes_is_cleaned_and_capped():
    report = parse_report(b'{"summary": "ok\\u0000' + b"z" * 9000 + b'"}')
    assert report.summary is not None and "\x00" not in report.summary
    assert len(report.summary) == 4000


def test_a_fifo_report_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "report.json")
    assert read_report(tmp_path / "report.json", 1000).problems == (
        "report is not a regular file: ignored",)


def test_a_symlinked_or_oversized_report_is_refused(tmp_path):
    (tmp_path / "real.json").write_text('{"tests": "passed"}')
    os.symlink(tmp_path / "real.json", tmp_path / "link.json")
    (tmp_path / "big.json").write_text('{"summary": "' + "x" * 2000 + '"}')
    assert read_report(tmp_path / "link.json", 1000).problems == (
        "report is a symbolic link: ignored",)
    assert read_report(tmp_path / "big.json", 1000).problems == (
        "report is larger than 1000 bytes: ignored",)
    assert read_report(tmp_path / "none.json", 1000).problems == ("no report written",)


def test_a_sandbox_path_comes_from_a_fix_job_id_only(tmp_path):
    fix = uuid.uuid4()
    assert SandboxLayout.of(tmp_path, f"{{{fix}}}").root == tmp_path / str(fix)
    for bad in ("..", "../../etc", "/etc", "x"):
        with pytest.raises(ValueError):
            SandboxLayout.of(tmp_path, bad)


def test_removing_a_sandbox_never_follows_a_link_the_fixer_left(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep")
    layout = SandboxLayout.of(tmp_path / "ws" / "sandboxes", str(uuid.uuid4()))
    layout.create()
    layout.checkout.mkdir()
    os.symlink(precious, layout.checkout / "escape")
    os.chmod(layout.work, 0o000)

    assert layout.remove() and not layout.root.exists()
    assert (precious / "keep.txt").read_text() == "keep"
    assert layout.remove() is False  # twice is fine


def test_the_worker_own_variables_cannot_be_allow_listed():
    for name in ("DATABASE_URL", "JOBS_SMTP_URL", "PGPASSWORD", "DOCKER_HOST"):
        with pytest.raises(ValueError, match="never given to a fixer"):
            SandboxSettings(env_allow=(name,))
    assert SandboxSettings(env_allow=("MODEL_API_KEY",)).env_allow == ("MODEL_API_KEY",)


def test_the_config_repr_names_allow_listed_variables_never_their_values(tmp_path):
    config = SandboxConfig(workspace_dir=tmp_path, extra_env=(("MODEL_API_KEY", "sk-secret"),))
    assert "MODEL_API_KEY" in repr(config) and "sk-secret" not in repr(config)


def test_the_fixer_stops_a_margin_before_the_job_so_its_outcome_can_be_recorded(tmp_path):
    from pipeline.sandbox.attempt import fixer_deadline

    config = SandboxConfig(workspace_dir=tmp_path, finish_margin=60.0)
    assert fixer_deadline(config, 2700.0, now=0.0) == 2640.0
    assert fixer_deadline(config, 2.0, now=0.0) == 1.5  # a short limit keeps a quarter
    assert fixer_deadline(config, None, now=0.0) == 3540.0


def test_the_process_runtime_confines_the_fixer_in_namespaces_as_its_own_uid(
        tmp_path, monkeypatch):
    import time

    from pipeline.sandbox import FixerRun, Limits
    from pipeline.sandbox.process import ProcessRuntime

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    runtime = ProcessRuntime(SandboxConfig(workspace_dir=tmp_path, limits=Limits(pids=99)))
    fix = str(uuid.uuid4())
    layout = SandboxLayout.of(tmp_path / "sandboxes", fix)
    argv = runtime.argv(FixerRun(fix, 2, ("python3", "fix.py"), layout, time.monotonic() + 60))

    assert argv[:4] == ["setpriv", "--pdeathsig", "KILL", "--"]
    assert {"--net", "--pid", "--mount-proc", "--kill-child"} <= set(argv)
    assert "--nproc=99" in argv and "--no-new-privs" in argv
    uid = str(runtime.uid_of(fix))
    assert argv[argv.index("--reuid") + 1] == uid and "--clear-groups" in argv
    assert argv[-2:] == ["python3", "fix.py"]
    assert runtime.uid_of(fix) == ProcessRuntime(runtime.config).uid_of(fix)  # every attempt


def test_the_process_runtime_refuses_a_fixer_it_cannot_keep_from_the_workers_secrets(
        tmp_path, monkeypatch):
    # Not root and no user namespaces (a container under Docker's seccomp
    # profile): the fixer would be the worker's user, in its PID namespace.
    import time

    from pipeline.sandbox import FixerRun, SandboxError
    from pipeline.sandbox.process import ProcessRuntime

    monkeypatch.setattr(os, "geteuid", lambda: 10001)
    runtime = ProcessRuntime(SandboxConfig(workspace_dir=tmp_path))
    runtime.__dict__["_userns"] = False
    fix = str(uuid.uuid4())
    layout = SandboxLayout.of(tmp_path / "sandboxes", fix)
    ran = tmp_path / "ran"

    with pytest.raises(SandboxError, match=r"cannot confine a fixer here.*docker runtime"):
        runtime.run(FixerRun(fix, 1, ("touch", str(ran)), layout, time.monotonic() + 60))
    assert runtime.confinement() is None and not ran.exists()


def test_a_trusted_fixer_runs_unconfined_only_when_the_operator_says_so(tmp_path, monkeypatch,
                                                                       caplog):
    import time

    from pipeline.sandbox import FixerRun
    from pipeline.sandbox.process import ProcessRuntime

    runtime = ProcessRuntime(SandboxConfig(workspace_dir=tmp_path, allow_unconfined=True))
    runtime.__dict__["_userns"] = False
    fix = str(uuid.uuid4())
    layout = SandboxLayout.of(tmp_path / "sandboxes", fix)
    layout.create()
    layout.checkout.mkdir()
    ran = tmp_path / "ran"
    monkeypatch.setattr(os, "geteuid", lambda: 10001)

    result = runtime.run(FixerRun(fix, 1, ("touch", str(ran)), layout, time.monotonic() + 60))

    assert result.exit_code == 0 and ran.exists()
    assert "runs unconfined" in caplog.text


MOUNTINFO = """\
631 555 0:52 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X
640 631 8:1 /var/lib/docker/containers/{id}/resolv.conf /etc/resolv.conf rw - ext4 /dev/sda1 rw
641 631 8:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw - ext4 /dev/sda1 rw
643 631 8:1 /var/lib/docker/volumes/p_ws/_data /var/lib/pts-jobs/workspace rw - ext4 /dev/sda1 rw
"""


def test_a_worker_in_a_container_knows_its_container_from_its_mounts():
    from pipeline.sandbox.engine_paths import own_container_id

    container_id = "ab" * 32
    assert own_container_id(MOUNTINFO.format(id=container_id)) == container_id
    assert own_container_id("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n") is None  # on the host


def test_sandbox_paths_are_translated_through_the_worker_containers_mounts():
    from pathlib import Path

    from pipeline.sandbox import SandboxError
    from pipeline.sandbox.engine_paths import EnginePaths

    paths = EnginePaths([
        {"Destination": "/var/lib/pts-jobs", "Source": "/srv/outer"},
        {"Destination": "/var/lib/pts-jobs/workspace",
         "Source": "/var/lib/docker/volumes/p_fix-workspace/_data"},
    ])
    work = Path("/var/lib/pts-jobs/workspace/sandboxes/1234/work")
    assert paths.source(work) == "/var/lib/docker/volumes/p_fix-workspace/_data/sandboxes/1234/work"
    assert paths.source(Path("/var/lib/pts-jobs/x")) == "/srv/outer/x"
    with pytest.raises(SandboxError, match="not on a volume"):
        paths.source(Path("/home/worker/.workspace/sandboxes/1234/work"))
    assert EnginePaths(None).source(work) == str(work)  # on the engine's host


def test_pts_jobs_sandbox_says_plainly_when_fixers_would_not_be_isolated():
    import cli
    from settings import load_settings

    report = cli.sandbox_report(load_settings(sandbox={"runtime": "process"}))

    assert report["runtime"] == "process" and report["isolates_untrusted_code"] is False
    assert "NOT for untrusted fixers" in report["note"]


def test_a_checkout_of_a_commit_that_is_no_longer_a_branch_head_of_a_bare_cache(tmp_path):
    import subprocess

    from pipeline.sandbox import checkout
    from tests.support.pipeline import git, make_repo

    work = make_repo(tmp_path / "upstream")
    analysed = git(work, "rev-parse", "HEAD").strip()
    cache = tmp_path / "workspace" / "repos" / "r"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(work), str(cache)], check=True)
    # Upstream rewrites its history (a force push); the cache fetches it: the
    # analysed commit is still in the cache's objects, no longer on any branch.
    (work / "README.md").write_text("# rewritten\n")
    git(work, "commit", "--quiet", "--all", "--amend", "-m", "rewritten")
    git(cache, "fetch", "--quiet", "origin", "+main:main")
    assert git(cache, "branch", "--contains", analysed).strip() == ""
    layout = SandboxLayout.of(tmp_path / "workspace" / "sandboxes", str(uuid.uuid4()))

    checkout.prepare(layout, cache, analysed, timeout=60)

    assert git(layout.checkout, "rev-parse", "HEAD").strip() == analysed
    assert not (layout.checkout / ".git" / "objects" / "info" / "alternates").exists()
    assert git(layout.checkout, "remote").strip() == ""  # no path of the host, no credentials


@pytest.mark.parametrize("socket_file", [False, True], ids=["no socket", "nothing answers"])
def test_no_engine_at_a_unix_socket_is_an_error_that_leaves_no_socket_open(tmp_path, socket_file):
    path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as server:
        if socket_file:  # a socket file whose engine is gone: bound, never listening
            server.bind(str(path))
        config = SandboxConfig(workspace_dir=tmp_path, docker_url=f"unix://{path}")
        with pytest.raises(SandboxError, match=re.escape(f"no Docker engine answers at {path}")):
            docker_client(config)
    gc.collect()  # an unclosed socket would warn here, and the warning fail the test

"""Run the job system end to end: database, a worker, one bug report through it.

    python demo.py            # runs until Ctrl-C
    python demo.py --once     # exits once the demo jobs are done

Without ``DATABASE_URL`` an embedded PostgreSQL starts in ``.pgdata``; with it,
that server is used. The worker is ``dramatiq actors``, as in production. A bug
report about a small sample repository is received, parsed, the repository
analysed, fixed by the stand-in fixer (``examples/fixer.py``) in a sandbox,
the reporter notified (recorded, or mailed with ``JOBS_SMTP_URL``) and the
sandbox cleaned up. The dashboard (``pts-jobs web``) serves it all: its URL and
a login token are printed (the token is ``JOBS_ADMIN_TOKEN``, or one made up
for this run).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--once", action="store_true", help="exit when the demo jobs are done")
    parser.add_argument("--threads", type=int, default=4, help="worker threads (default 4)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    started = time.monotonic()
    # The demo's sample repository is a local path: allow file links for this
    # run (and its worker) only. Deployments keep the default, https.
    os.environ.setdefault("JOBS_GIT_PROTOCOLS", "https,file")
    from embedded import database_url
    from pgbroker.redact import redact
    from settings import settings

    url = database_url(settings)
    # The worker and this process must share one server, embedded or not.
    os.environ["DATABASE_URL"] = url
    print(f"database   {redact(url)} (schema {settings.schema_name})")

    import actors  # noqa: F401  (declares the job types)
    from broker import broker

    broker.ensure_schema()
    print(f"ready      in {time.monotonic() - started:.1f}s; starting `dramatiq actors`")
    # The stand-in fixer, unless one is configured: our own code, on this machine,
    # so the process runtime (not a boundary for untrusted fixers: see the README).
    if "JOBS_FIXER_COMMAND" not in os.environ:
        os.environ["JOBS_FIXER_COMMAND"] = f"{sys.executable} {ROOT / 'examples/fixer.py'}"
        os.environ.setdefault("JOBS_SANDBOX__RUNTIME", "process")
        # It is this project's code: run it even where the process runtime
        # cannot confine it (not root, no user namespaces), which a real fixer
        # never is.
        os.environ.setdefault("JOBS_SANDBOX__ALLOW_UNCONFINED", "true")
    worker = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "actors", "--processes", "1",
         "--threads", str(args.threads)],
        cwd=ROOT,
    )
    web = start_dashboard(settings)
    try:
        return run_demo(once=args.once, worker=worker)
    except KeyboardInterrupt:
        print("\nstopping the worker (running jobs finish first)...")
        return 0
    finally:
        stop(web)
        stop(worker)


def start_dashboard(settings) -> subprocess.Popen:
    """``pts-jobs web`` in a subprocess, with a login token printed for the newcomer."""
    token = settings.admin_token.get_secret_value() if settings.admin_token else None
    env = dict(os.environ)
    if not token:
        token = secrets.token_urlsafe(16)
        env["JOBS_ADMIN_TOKEN"] = token
    web = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "web"], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL)
    url = f"http://{settings.web_host}:{settings.web_port}/"
    if wait_for_http(url + "healthz", web):
        print(f"dashboard  {url}  (log in with token {token})")
    else:
        print(f"dashboard  did not start on {url} (is the port taken? set JOBS_WEB_PORT)")
    return web


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 20) -> bool:
    from urllib.request import urlopen

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urlopen(url, timeout=1) as answer:
                return answer.status == 200
        except OSError:
            time.sleep(0.1)
    return False


def run_demo(*, once: bool, worker: subprocess.Popen) -> int:
    """One bug report through the pipeline: intake, parse, analyse, fix, notify, clean."""
    import actors
    from actors import runtime
    from actors.base import InvalidPayload
    from actors.execute_fix import queue_fix
    from actors.process_bug_report import receive
    from pgbroker.jobs import get_job
    from pipeline.codebase import link_repository

    db = runtime.current().db

    def wait(message_id: str, what: str) -> bool:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                print(f"the worker exited with code {worker.returncode}")
                return False
            job = get_job(message_id)
            if job.state in ("done", "dead"):
                took = ((job.finished_at or job.enqueued_at) - job.enqueued_at).total_seconds()
                print(f"{job.state:<5} {job.queue_name:<19} {took * 1000:6.0f} ms  {what}: "
                      f"{job.result or job.last_error}")
                return job.state == "done"
            time.sleep(0.05)
        print(f"timed out waiting for {what}")
        return False

    try:
        actors.send_notification.send(type="bug_received", bug_report_id="nope",
                                      recipient_email="not-an-address")
    except InvalidPayload as refused:
        print(f"refused   {refused}")

    repo = sample_repository()
    link = link_repository(db, runtime.current().pipeline, str(repo))
    bug = receive(raw_text=SAMPLE_REPORT, reporter_email="reporter@example.com",
                  repo_link_id=link)
    steps = [
        (lambda: actors.process_bug_report.send(bug_report_id=bug).message_id, "bug report"),
        (lambda: actors.analyze_codebase.send(repo_link_id=link).message_id,
         "analysis"),
    ]
    for send, what in steps:
        if not wait(send(), what):
            return 1
    fix_job_id = queue_fix(bug)
    if not wait(_job_of("execute_fix"), "fix"):
        return 1
    mine = [(m, "notification") for m in _jobs_of("send_notification")
            if get_job(m).payload["bug_report_id"] == bug]
    mine += [(m, "cleanup") for m in _jobs_of("cleanup_container")
             if get_job(m).payload["fix_job_id"] == fix_job_id]
    for message_id, what in mine:
        if not wait(message_id, what):
            return 1
    fix = db.one("fix_job_get", id=fix_job_id) or {}
    print(f"\nfix job {fix_job_id}: {fix.get('status')}, pull request {fix.get('pr_url')}")
    print(fix.get("patch", ""))
    if once:
        return 0
    print("the worker and the dashboard keep running: send jobs from another shell, or press "
          "Ctrl-C to stop")
    while worker.poll() is None:
        time.sleep(0.5)
    return worker.returncode or 0


SAMPLE_REPORT = """add() returns the wrong total

Steps to reproduce:
1. Call add(2, 2)

Expected: 4
Actual: 0

AssertionError: assert 0 == 4
"""


def sample_repository() -> Path:
    """A tiny git repository with a bug, in the workspace (made once)."""
    from settings import settings

    repo = (settings.workspace_dir / "demo-repo").resolve()
    if (repo / ".git").is_dir():
        return repo
    (repo / "src").mkdir(parents=True, exist_ok=True)
    (repo / "pyproject.toml").write_text('[project]\nname = "sample"\n')
    (repo / "src" / "app.py").write_text("def add(a, b):\n    return a - b\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "demo", "GIT_AUTHOR_EMAIL": "demo@example.com",
           "GIT_COMMITTER_NAME": "demo", "GIT_COMMITTER_EMAIL": "demo@example.com"}
    for command in (["init", "--quiet", "--initial-branch", "main"], ["add", "--all"],
                    ["commit", "--quiet", "-m", "sample"]):
        subprocess.run(["git", *command], cwd=repo, env=env, check=True)
    return repo


def _jobs_of(actor_name: str) -> list[str]:
    from broker import broker

    return [row[0] for row in broker.fetch("jobs_of_actor", actor_name=actor_name)]


def _job_of(actor_name: str) -> str:
    return _jobs_of(actor_name)[-1]


def stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


if __name__ == "__main__":
    sys.exit(main())

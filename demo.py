"""Run the job system end to end: database, a worker, a job of each type.

    python demo.py            # runs until Ctrl-C
    python demo.py --once     # exits once the demo jobs are done

Without ``DATABASE_URL`` an embedded PostgreSQL starts in ``.pgdata``; with it,
that server is used. The worker is ``dramatiq actors``, as in production.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--once", action="store_true", help="exit when the demo jobs are done")
    parser.add_argument("--threads", type=int, default=4, help="worker threads (default 4)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    started = time.monotonic()
    from embedded import database_url
    from pgbroker.db import mask_url
    from settings import settings

    url = database_url(settings)
    # The worker and this process must share one server, embedded or not.
    os.environ["DATABASE_URL"] = url
    print(f"database   {mask_url(url)} (schema {settings.schema_name})")

    import actors
    from broker import broker

    broker.ensure_schema()
    print(f"ready      in {time.monotonic() - started:.1f}s; starting `dramatiq actors`")
    worker = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "actors", "--processes", "1",
         "--threads", str(args.threads)],
        cwd=ROOT,
    )
    try:
        return run_demo(actors, once=args.once, worker=worker)
    except KeyboardInterrupt:
        print("\nstopping the worker (running jobs finish first)...")
        return 0
    finally:
        stop(worker)


def run_demo(actors, *, once: bool, worker: subprocess.Popen) -> int:
    from actors.base import InvalidPayload
    from pgbroker.jobs import get_job

    bug, repo, fix = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    sent = [
        actors.process_bug_report.send(bug_report_id=str(bug)),
        actors.analyze_codebase.send(repo_link_id=str(repo), triggered_by="manual"),
        actors.execute_fix.send(fix_job_id=str(fix), bug_report_id=str(bug),
                                repo_link_id=str(repo), codebase_knowledge_id=str(uuid.uuid4())),
        actors.cleanup_container.send(container_id=f"sandbox-{fix}", fix_job_id=str(fix)),
        actors.send_notification.send(type="bug_received", bug_report_id=str(bug),
                                      recipient_email="reporter@example.com"),
    ]
    try:
        actors.send_notification.send(type="bug_received", bug_report_id="nope",
                                      recipient_email="not-an-address")
    except InvalidPayload as refused:
        print(f"refused    {refused}")

    sent_at = time.monotonic()
    pending = {m.message_id: m for m in sent}
    while pending:
        if worker.poll() is not None:
            print(f"the worker exited with code {worker.returncode}")
            return 1
        if time.monotonic() - sent_at > 60:
            print(f"timed out waiting for {len(pending)} jobs")
            return 1
        for message_id in list(pending):
            job = get_job(message_id)
            if job.state in ("done", "dead"):
                took = ((job.finished_at or job.enqueued_at) - job.enqueued_at).total_seconds()
                print(f"{job.state:<10} {job.queue_name:<20} {message_id}  {took * 1000:6.0f} ms"
                      f"  -> {job.result or job.last_error}")
                del pending[message_id]
        time.sleep(0.05)

    if once:
        return 0
    print("\nthe worker keeps running: send jobs from another shell, e.g.\n"
          "  .venv/bin/python -c \"import actors, uuid; "
          "actors.process_bug_report.send(bug_report_id=str(uuid.uuid4()))\"\n"
          "press Ctrl-C to stop")
    while worker.poll() is None:
        time.sleep(0.5)
    return worker.returncode or 0


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

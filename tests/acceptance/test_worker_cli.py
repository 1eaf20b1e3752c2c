"""`dramatiq actors`, run as users run it, processes real jobs."""

from __future__ import annotations

from actors import process_bug_report
from actors.process_bug_report import receive
from tests.support import job_in


def test_dramatiq_actors_started_as_a_subprocess_processes_a_job(cli_worker):
    worker = cli_worker("actors", threads=2)
    worker.wait_ready()
    bug = receive(raw_text="Checkout fails\nTypeError: cart is undefined")

    message = process_bug_report.send(bug_report_id=bug)

    result = message.get_result(block=True, timeout=15_000)
    assert result["status"] == "PARSED"
    job = job_in(message.message_id, "done")
    assert job.lease_owner is None and job.attempts == 1
    assert worker.stop() == 0

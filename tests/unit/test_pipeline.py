"""Pipeline functions on their own: a report's outcome, sandboxes, git, the fixer.

``bug_reports.process`` runs on a fake transaction that answers by query name
(the SQL itself is tested in tests/integration); the rest on a real filesystem
and real git, which need no database.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from pipeline import bug_reports
from pipeline.codebase import analyze_full
from pipeline.config import Mail, PipelineConfig, ReadLimits
from pipeline.errors import MissingRecord, PermanentError
from pipeline.fixes import sandbox_path
from pipeline.git import Git
from pipeline.notifications import Notice
from pipeline.sandbox import SandboxConfig
from pipeline.sandbox.attempt import run_attempt
from pipeline.sandbox.process import ProcessRuntime
from tests.support.pipeline import fixer, make_repo


class FakeTransaction:
    """Answers each named query with the rows given for it; records what ran."""

    def __init__(self, **answers: dict[str, Any] | None) -> None:
        self.answers = answers
        self.ran: list[tuple[str, dict[str, Any]]] = []

    def one(self, name: str, **params: Any) -> dict[str, Any] | None:
        self.ran.append((name, params))
        return self.answers.get(name)

    def execute(self, name: str, **params: Any) -> int:
        self.ran.append((name, params))
        return 1


def report(**fields: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4(), "status": "RECEIVED", "raw_text": "Search crashes\n"
            "TypeError: q is null", "raw_payload": None, "reporter_email": "ada@example.com",
            **fields}


def config(workspace: Path, **changes: Any) -> PipelineConfig:
    values: dict[str, Any] = dict(workspace_dir=workspace, git_timeout=30, fixer_command=None,
                                  git_protocols=frozenset({"file"}), read_limits=ReadLimits(),
                                  heartbeat_interval=1, mail=Mail(None, "jobs@example.com"),
                                  sandbox=SandboxConfig(workspace_dir=workspace, runtime="process"))
    return PipelineConfig(**{**values, **changes})


def test_a_received_report_is_parsed_and_its_reporter_is_to_be_told():
    row = report()
    tx = FakeTransaction(bug_report_lock=row, bug_report_parsed={"duplicate_of": None})

    processed = bug_reports.process(tx, str(row["id"]))  # type: ignore[arg-type]

    assert processed.result == {"status": "PARSED", "severity": "high", "duplicate_of": None}
    assert processed.notice == Notice("bug_received", str(row["id"]), "ada@example.com", {})
    assert [name for name, _ in tx.ran] == ["bug_report_lock", "bug_report_parsed"]


def test_a_report_already_processed_is_left_alone_and_nobody_is_told_again():
    tx = FakeTransaction(bug_report_lock=report(status="PARSED"))

    processed = bug_reports.process(tx, "id")  # type: ignore[arg-type]

    assert processed.result == {"status": "PARSED", "already": True}
    assert processed.notice is None and len(tx.ran) == 1


def test_an_unusable_report_is_invalid_with_its_reason_and_tells_nobody():
    tx = FakeTransaction(bug_report_lock=report(raw_text="   "))

    processed = bug_reports.process(tx, "id")  # type: ignore[arg-type]

    assert processed.result["status"] == "INVALID" and processed.notice is None
    assert tx.ran[-1][0] == "bug_report_invalid"


def test_a_missing_report_is_a_permanent_error():
    with pytest.raises(MissingRecord) as missing:
        bug_reports.process(FakeTransaction(), "nope")  # type: ignore[arg-type]

    assert isinstance(missing.value, PermanentError)


def test_a_sandbox_path_is_made_from_a_fix_job_id_and_nothing_else(tmp_path):
    settings = config(tmp_path / "workspace")
    fix = str(uuid.uuid4())

    assert sandbox_path(settings, fix) == tmp_path / "workspace" / "sandboxes" / fix
    for bad in ("f1", "../precious", "/etc"):
        with pytest.raises(ValueError):
            sandbox_path(settings, bad)


def test_a_full_analysis_counts_languages_and_guesses_the_test_command(tmp_path):
    repo = make_repo(tmp_path / "repo")
    git = Git(timeout=30)
    head = git.run(repo, "rev-parse", "HEAD").decode().strip()

    analysis = analyze_full(git, repo, head, ReadLimits())

    assert analysis.languages == {"Markdown": {"files": 1, "lines": 1},
                                  "Python": {"files": 2, "lines": 7}}
    assert analysis.manifests == ["pyproject.toml"]
    assert analysis.test_command == "python -m pytest"


def test_the_fixers_report_and_output_come_back_and_a_crash_is_a_failed_fix(tmp_path):
    import shlex
    import time

    cache = make_repo(tmp_path / "workspace" / "repos" / "r")
    commit = Git(timeout=30).run(cache, "rev-parse", "HEAD").decode().strip()
    sandbox = config(tmp_path / "workspace").sandbox
    runtime = ProcessRuntime(sandbox)

    def attempt(name: str):
        return run_attempt(runtime, sandbox, fix_job_id=str(uuid.uuid4()), attempt=1,
                           command=tuple(shlex.split(fixer(name))), cache=cache, commit=commit,
                           bug_report={"id": 1, "reporter_email": "ada@example.com"},
                           deadline=time.monotonic() + 60)

    fixed = attempt("fix_ok.py")
    assert fixed.succeeded and fixed.tests == "passed"
    assert fixed.pr_url is not None and fixed.pr_url.startswith("https://git.example/pulls/")
    assert "fixed src/app.py" in fixed.logs and "+    return a + b" in fixed.patch

    crashed = attempt("fix_crash.py")
    assert not crashed.succeeded and "looking at the bug" in crashed.logs
    assert crashed.error is not None and "model unavailable" in crashed.error

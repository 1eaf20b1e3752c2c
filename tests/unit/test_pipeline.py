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
from pipeline.fixes import FixFailed, remove_sandbox, run_fixer, sandbox_path
from pipeline.git import Git
from pipeline.notifications import Notice
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
                                  heartbeat_interval=1, mail=Mail(None, "jobs@example.com"))
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


def test_a_sandbox_is_removed_once_and_a_path_outside_the_workspace_never(tmp_path):
    settings = config(tmp_path / "workspace")
    sandbox = sandbox_path(settings, "f1")
    sandbox.mkdir(parents=True)
    precious = tmp_path / "precious"
    precious.mkdir()

    assert remove_sandbox(settings, sandbox) is True
    assert remove_sandbox(settings, sandbox) is False
    with pytest.raises(ValueError, match="is not a sandbox under"):
        remove_sandbox(settings, precious)
    with pytest.raises(ValueError):
        remove_sandbox(settings, sandbox / ".." / ".." / ".." / "precious")
    assert precious.exists()


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
    checkout = make_repo(tmp_path / "sandbox" / "checkout")
    sandbox = checkout.parent

    outcome, logs = run_fixer(sandbox, checkout, fixer("fix_ok.py"), "f1234567", {"id": 1})
    assert outcome == {"pr_url": "https://git.example/pulls/f1234567", "tests": "passed"}
    assert "fixed src/app.py" in logs

    with pytest.raises(FixFailed, match="model unavailable") as failed:
        run_fixer(sandbox, checkout, fixer("fix_crash.py"), "f1", {"id": 1})
    assert "looking at the bug" in failed.value.logs  # type: ignore[attr-defined]
    with pytest.raises(FixFailed, match="no fixer configured"):
        run_fixer(sandbox, checkout, None, "f1", {"id": 1})

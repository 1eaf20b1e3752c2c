"""Test data for the pipeline: a small git repository, links, reports, fixers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from psycopg2.extras import RealDictCursor

from actors import runtime
from pipeline.codebase import link_repository
from pipeline.fixes import sandbox_path
from tests.support.environment import FIXERS, PIPELINE_SCHEMA
from tests.support.fixtures import db

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, env=GIT_ENV, check=True,
                          capture_output=True, text=True).stdout


def make_repo(path: Path) -> Path:
    """A Python project with a bug in add(), committed on main."""
    (path / "src").mkdir(parents=True)
    (path / "tests").mkdir()
    (path / "pyproject.toml").write_text('[project]\nname = "sample"\n')
    (path / "src" / "app.py").write_text("def add(a, b):\n    return a - b\n")
    (path / "tests" / "test_app.py").write_text(
        "from src.app import add\n\n\ndef test_add():\n    assert add(2, 2) == 4\n")
    (path / "README.md").write_text("# sample\n")
    git(path, "init", "--quiet", "--initial-branch", "main")
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "-m", "initial")
    return path


def fixer(name: str) -> str:
    """The command that runs ``tests/fixers/<name>``."""
    script = FIXERS / name
    return str(script) if script.suffix == ".sh" else f"{sys.executable} {script}"


def link_repo(url: str, branch: str = "main") -> str:
    return link_repository(runtime.current().db, runtime.current().pipeline, url, branch)


def new_fix_job(bug_report_id: str, repo_link_id: str, knowledge_id: str) -> str:
    row = runtime.current().db.one("fix_job_insert", bug_report_id=bug_report_id,
                                   repo_link_id=repo_link_id,
                                   codebase_knowledge_id=knowledge_id)
    assert row is not None
    return str(row["id"])


def sandbox_of(fix_job_id: str) -> Path:
    """The sandbox of a fix job, in the running configuration's workspace."""
    return sandbox_path(runtime.current().pipeline, fix_job_id)


def rows(sql_text: str, *params) -> list[dict]:
    """Rows of a query on the pipeline schema ({schema}), as dicts."""
    with db() as conn, conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute(sql_text.replace("{schema}", f'"{PIPELINE_SCHEMA}"'), params)
        return [dict(r) for r in cur.fetchall()] if cur.description else []

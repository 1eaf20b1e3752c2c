"""analyze-codebase's work: fetch a repository and describe it, commit by commit.

Repositories are cloned into the workspace cache (``<workspace>/repos``) with
the git command line, every call bounded by the configured git timeout. An
analysis records files and lines per language, the manifests found, the likely
test command and the top-level layout. An incremental one starts from the last
analysed commit and recounts only the files that changed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg2.extras import Json

from .commands import CommandResult, run_command
from .config import PipelineConfig
from .db import Database
from .errors import MissingRecord

logger = logging.getLogger(__name__)

LANGUAGES = {
    ".py": "Python", ".js": "JavaScript", ".jsx": "JavaScript", ".mjs": "JavaScript",
    ".ts": "TypeScript", ".tsx": "TypeScript", ".go": "Go", ".rs": "Rust", ".rb": "Ruby",
    ".java": "Java", ".kt": "Kotlin", ".cs": "C#", ".c": "C", ".h": "C", ".cpp": "C++",
    ".hpp": "C++", ".php": "PHP", ".swift": "Swift", ".ex": "Elixir", ".exs": "Elixir",
    ".sql": "SQL", ".sh": "Shell", ".css": "CSS", ".scss": "CSS", ".html": "HTML",
    ".vue": "Vue", ".svelte": "Svelte", ".md": "Markdown",
}
MANIFESTS = ("package.json", "pyproject.toml", "setup.py", "requirements.txt", "go.mod",
             "Cargo.toml", "Gemfile", "pom.xml", "build.gradle", "composer.json", "mix.exs",
             "Makefile")


class GitError(RuntimeError):
    """A git command failed; the message carries git's own words."""


@dataclass(frozen=True)
class Analysis:
    commit_sha: str
    base_commit_sha: str | None
    full: bool
    languages: dict[str, dict[str, int]]
    manifests: list[str]
    test_command: str | None
    layout: list[str]
    changed_files: list[str] | None


def link_repository(db: Database, url: str, branch: str = "main") -> str:
    """Link a repository (a git URL or a local path) and its branch; returns the link's id."""
    row = db.one("repo_link_insert", url=url, branch=branch)
    assert row is not None
    return str(row["id"])


def analyze(db: Database, config: PipelineConfig, repo_link_id: str, *, full_analysis: bool,
            triggered_by: str) -> dict[str, Any]:
    """Fetch the repository, analyse its branch head and store the result.

    Returns the stored analysis's id, the commit and whether it was full.

    Raises:
        MissingRecord: no repository link has this id.
        GitError: the repository cannot be cloned or fetched (retried).
    """
    link = db.one("repo_link_get", id=repo_link_id)
    if link is None:
        raise MissingRecord(f"no repository link {repo_link_id}")
    git = Git(config.git_timeout)
    checkout = sync_repository(git, config.repos_dir / str(repo_link_id),
                               link["url"], link["branch"])
    head = git(checkout, "rev-parse", "HEAD").strip()
    previous = db.one("knowledge_latest", repo_link_id=repo_link_id)
    if full_analysis or previous is None or not _has_commit(checkout, previous["commit_sha"]):
        result = analyze_full(git, checkout, head)
    else:
        result = analyze_changes(git, checkout, previous, head)
    row = db.one(
        "knowledge_store", repo_link_id=repo_link_id, commit_sha=result.commit_sha,
        base_commit_sha=result.base_commit_sha, full_analysis=result.full,
        triggered_by=triggered_by, languages=Json(result.languages),
        manifests=Json(result.manifests), test_command=result.test_command,
        layout=Json(result.layout),
        changed_files=None if result.changed_files is None else Json(result.changed_files),
    )
    assert row is not None
    return {"codebase_knowledge_id": str(row["id"]), "commit_sha": head, "full": result.full}


def sync_repository(git: Git, path: Path, url: str, branch: str) -> Path:
    """A checkout of ``branch`` at ``path``: cloned the first time, fetched after."""
    if (path / ".git").is_dir():
        git(path, "fetch", "--quiet", "origin", branch)
        git(path, "checkout", "--quiet", "--force", "--detach", "FETCH_HEAD")
        return path
    if path.exists():
        shutil.rmtree(path)  # a clone cut off half-way
    path.parent.mkdir(parents=True, exist_ok=True)
    git(path.parent, "clone", "--quiet", "--branch", branch, "--", url, str(path))
    return path


def analyze_full(git: Git, checkout: Path, head: str) -> Analysis:
    files = git(checkout, "ls-files", "-z").split("\0")
    languages: dict[str, Counter] = {}
    for name in filter(None, files):
        _count(checkout / name, name, languages, +1)
    return _analysis(git, checkout, head, None, True, languages, None)


def analyze_changes(git: Git, checkout: Path, previous: dict[str, Any], head: str) -> Analysis:
    base = previous["commit_sha"]
    languages = {lang: Counter(counts) for lang, counts in previous["languages"].items()}
    changed = [n for n in git(checkout, "diff", "--name-only", "-z", base, head).split("\0") if n]
    for name in changed:
        old = _show(checkout, base, name)
        if old is not None:
            _tally(name, old, languages, -1)
        if (checkout / name).is_file():
            _count(checkout / name, name, languages, +1)
    return _analysis(git, checkout, head, base, False, languages, changed)


@dataclass(frozen=True)
class Git:
    """The git command line, each call bounded by ``timeout`` seconds."""

    timeout: float

    def __call__(self, cwd: Path, *args: str) -> str:
        """Run git; return its output. Raises GitError with git's message."""
        # Never wait for a password prompt nobody will answer.
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        result: CommandResult = run_command(["git", *args], cwd=cwd, env=env,
                                            timeout=self.timeout)
        if result.returncode != 0:
            raise GitError(
                f"git {args[0]} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout


def _has_commit(checkout: Path, sha: str) -> bool:
    return run_command(["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=checkout,
                       timeout=30).returncode == 0


def _show(checkout: Path, commit: str, name: str) -> str | None:
    result = run_command(["git", "show", f"{commit}:{name}"], cwd=checkout, timeout=60)
    return result.stdout if result.returncode == 0 else None


def _count(path: Path, name: str, languages: dict[str, Counter], sign: int) -> None:
    try:
        text = path.read_text(errors="replace")
    except (OSError, UnicodeDecodeError):
        return
    _tally(name, text, languages, sign)


def _tally(name: str, text: str, languages: dict[str, Counter], sign: int) -> None:
    language = LANGUAGES.get(Path(name).suffix.lower())
    if language is None:
        return
    counts = languages.setdefault(language, Counter())
    counts["files"] += sign
    counts["lines"] += sign * text.count("\n")


def _analysis(git: Git, checkout: Path, head: str, base: str | None, full: bool,
              languages: dict[str, Counter], changed: list[str] | None) -> Analysis:
    top = sorted(filter(None, git(checkout, "ls-tree", "--name-only", "HEAD").splitlines()))
    manifests = sorted(n for n in top if n in MANIFESTS)
    return Analysis(
        commit_sha=head, base_commit_sha=base, full=full,
        languages={lang: {"files": c["files"], "lines": c["lines"]}
                   for lang, c in sorted(languages.items()) if c["files"] > 0},
        manifests=manifests, test_command=guess_test_command(checkout, manifests),
        layout=top, changed_files=changed,
    )


def guess_test_command(checkout: Path, manifests: list[str]) -> str | None:
    """The command a developer of this repository most likely runs its tests with."""
    if "package.json" in manifests:
        try:
            scripts = json.loads((checkout / "package.json").read_text()).get("scripts", {})
        except (OSError, ValueError):
            scripts = {}
        if "test" in scripts:
            return "npm test"
    if {"pyproject.toml", "setup.py", "requirements.txt"} & set(manifests) or \
            (checkout / "tests").is_dir():
        return "python -m pytest"
    for manifest, command in (("go.mod", "go test ./..."), ("Cargo.toml", "cargo test"),
                              ("Gemfile", "bundle exec rake test"), ("pom.xml", "mvn test"),
                              ("mix.exs", "mix test"), ("Makefile", "make test")):
        if manifest in manifests:
            return command
    return None

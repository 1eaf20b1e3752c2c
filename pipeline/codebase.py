"""analyze-codebase's work: fetch a repository and describe it, commit by commit.

Each linked repository has a bare cache (``<workspace>/repos/<link id>``),
fetched by :mod:`pipeline.repository` and read from git's objects only: no
working tree, so no symlink is followed and no file of the repository's
choosing is opened. An analysis records files and lines per language, the
manifests found, the likely test command, the top-level layout and what it
skipped (symlinks, files over the size cap, what was past the read budget). An
incremental one starts from the last analysed commit and recounts only the
files that changed.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg2.extras import Json

from . import repository
from .config import PipelineConfig, ReadLimits
from .db import Database
from .errors import MissingRecord
from .git import Git, check_branch, check_repository_url
from .repository import BlobReader, Entry

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
    # Paths not read, with why: {"files": {path: reason}, "more": count not listed}.
    skipped: dict[str, Any] = field(default_factory=dict)


# At most this many skipped paths are listed; the rest are counted.
SKIPPED_LISTED = 1000
OVER_BUDGET = "analysis read limit reached"


def link_repository(db: Database, config: PipelineConfig, url: str, branch: str = "main") -> str:
    """Link a repository and its branch; returns the link's id.

    Raises:
        UnsafeRepository: the URL's protocol is not allowed, or the branch
            name is not one git accepts (or could read as an option).
    """
    check_repository_url(url, config.git_protocols)
    check_branch(branch)
    row = db.one("repo_link_insert", url=url, branch=branch)
    assert row is not None
    return str(row["id"])


def analyze(db: Database, config: PipelineConfig, repo_link_id: str, *, full_analysis: bool,
            triggered_by: str) -> dict[str, Any]:
    """Fetch the repository, analyse its branch head and store the result.

    Returns the stored analysis's id, the commit and whether it was full.

    Raises:
        MissingRecord: no repository link has this id.
        UnsafeRepository: the link's URL or branch is refused, or the
            repository is over its size limit (never retried).
        GitError: the repository cannot be fetched (retried).
    """
    link = db.one("repo_link_get", id=repo_link_id)
    if link is None:
        raise MissingRecord(f"no repository link {repo_link_id}")
    git = config.git
    cache = cache_path(config, repo_link_id)
    head = repository.sync(git, cache, link["url"], link["branch"], config.read_limits)
    previous = db.one("knowledge_latest", repo_link_id=repo_link_id)
    if (full_analysis or previous is None or (previous.get("skipped") or {}).get("more")
            or OVER_BUDGET in (previous.get("skipped") or {}).get("files", {}).values()
            or not repository.has_commit(git, cache, previous["commit_sha"])):
        result = analyze_full(git, cache, head, config.read_limits)
    else:
        result = analyze_changes(git, cache, previous, head, config.read_limits)
    row = db.one(
        "knowledge_store", repo_link_id=repo_link_id, commit_sha=result.commit_sha,
        base_commit_sha=result.base_commit_sha, full_analysis=result.full,
        triggered_by=triggered_by, languages=Json(result.languages),
        manifests=Json(result.manifests), test_command=result.test_command,
        layout=Json(result.layout),
        changed_files=None if result.changed_files is None else Json(result.changed_files),
        skipped=Json(result.skipped),
    )
    assert row is not None
    return {"codebase_knowledge_id": str(row["id"]), "commit_sha": head, "full": result.full}


def cache_path(config: PipelineConfig, repo_link_id: str) -> Path:
    """The bare repository that caches a link, created on first use.

    A cache from before bare caches (a clone with a working tree) is dropped:
    its working tree is exactly what the worker no longer reads.
    """
    path = config.repos_dir / str(repo_link_id)
    if (path / ".git").exists():
        shutil.rmtree(path)
    return path


def analyze_full(git: Git, repo: Path, head: str, limits: ReadLimits) -> Analysis:
    languages: dict[str, Counter] = {}
    skipped: dict[str, str] = {}
    budget = [limits.max_read_bytes]
    with repository.blob_reader(git, repo) as reader:
        counted = [e for e in repository.tree(git, repo, head) if _language(e.name)]
        for entry, content in repository.read_blobs(reader, counted, limits, budget, skipped):
            _tally(entry.name, content, languages, +1)
        return _analysis(git, repo, reader, head, None, True, languages, None, skipped, limits)


def analyze_changes(git: Git, repo: Path, previous: dict[str, Any], head: str,
                    limits: ReadLimits) -> Analysis:
    base = previous["commit_sha"]
    languages = {lang: Counter(counts) for lang, counts in previous["languages"].items()}
    changes = repository.changes(git, repo, base, head)
    changed_paths = {Entry("", "", None, change.name).path for change in changes}
    skipped = {path: reason
               for path, reason in (previous.get("skipped") or {}).get("files", {}).items()
               if path not in changed_paths}
    previously_skipped = (previous.get("skipped") or {}).get("files", {})
    budget = [limits.max_read_bytes]
    with repository.blob_reader(git, repo) as reader:
        # What the last analysis counted is taken away, what is there now is counted.
        old = [c.old for c in changes if c.old and _language(c.name)
               and c.old.path not in previously_skipped]
        # A budget of its own: what is taken away must be read, or counts drift.
        taken_away = [limits.max_read_bytes]
        for entry, content in repository.read_blobs(reader, old, limits, taken_away, {}):
            _tally(entry.name, content, languages, -1)
        new = [c.new for c in changes if c.new and _language(c.name)]
        for entry, content in repository.read_blobs(reader, new, limits, budget, skipped):
            _tally(entry.name, content, languages, +1)
        return _analysis(git, repo, reader, head, base, False, languages,
                         sorted(changed_paths), skipped, limits)


def _language(name: bytes) -> str | None:
    return LANGUAGES.get(Path(name.decode("utf-8", "backslashreplace")).suffix.lower())


def _tally(name: bytes, content: bytes, languages: dict[str, Counter], sign: int) -> None:
    language = _language(name)
    if language is None:
        return
    counts = languages.setdefault(language, Counter())
    counts["files"] += sign
    counts["lines"] += sign * content.count(b"\n")


def _analysis(git: Git, repo: Path, reader: BlobReader, head: str, base: str | None,
              full: bool, languages: dict[str, Counter], changed: list[str] | None,
              skipped: dict[str, str], limits: ReadLimits) -> Analysis:
    top = {entry.path: entry for entry in repository.top_level(git, repo, head)}
    manifests = sorted(name for name in top if name in MANIFESTS)
    package_json = None
    if "package.json" in top and top["package.json"].is_regular:
        _, package_json = reader.size_and_content(top["package.json"].sha, limits.max_file_bytes)
    listed = dict(sorted(skipped.items())[:SKIPPED_LISTED])
    return Analysis(
        commit_sha=head, base_commit_sha=base, full=full,
        languages={lang: {"files": c["files"], "lines": c["lines"]}
                   for lang, c in sorted(languages.items()) if c["files"] > 0},
        manifests=manifests,
        test_command=guess_test_command(manifests, package_json,
                                        has_tests_dir=top.get("tests", _NONE).mode == "040000"),
        layout=sorted(top), changed_files=changed,
        skipped={"files": listed, "more": len(skipped) - len(listed)},
    )


_NONE = Entry("", "", None, b"")


def guess_test_command(manifests: list[str], package_json: bytes | None, *,
                       has_tests_dir: bool) -> str | None:
    """The command a developer of this repository most likely runs its tests with."""
    if package_json is not None:
        try:
            scripts = json.loads(package_json).get("scripts", {})
        except (ValueError, AttributeError):
            scripts = {}
        if isinstance(scripts, dict) and "test" in scripts:
            return "npm test"
    if {"pyproject.toml", "setup.py", "requirements.txt"} & set(manifests) or has_tests_dir:
        return "python -m pytest"
    for manifest, command in (("go.mod", "go test ./..."), ("Cargo.toml", "cargo test"),
                              ("Gemfile", "bundle exec rake test"), ("pom.xml", "mvn test"),
                              ("mix.exs", "mix test"), ("Makefile", "make test")):
        if manifest in manifests:
            return command
    return None

"""Hostile repositories, links and branch names: nothing runs, nothing outside is read.

Real git on real repositories in a temporary directory; no database.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import repository
from pipeline.codebase import analyze_changes, analyze_full
from pipeline.config import ReadLimits
from pipeline.git import Git, GitError, UnsafeRepository, check_branch, check_repository_url
from tests.support.pipeline import git, make_repo

LOCAL = Git(timeout=30, allowed_protocols=frozenset({"file"}))
LIMITS = ReadLimits(max_file_bytes=1024 * 1024, max_read_bytes=8 * 1024 * 1024)


def commit_all(repo: Path, message: str = "change") -> str:
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.mark.parametrize("branch", [
    "--upload-pack=touch${IFS}/tmp/PWNED;git-upload-pack",
    "-b", "main..evil", "@{-1}", "has space", "refs/../up", "x" * 300, "", "a\x00b", "tab\tname",
])
def test_a_branch_name_that_git_refuses_or_could_take_as_an_option_is_refused(branch):
    with pytest.raises(UnsafeRepository):
        check_branch(branch)


@pytest.mark.parametrize("branch", ["main", "feature/login-fix", "release-1.2", "ü-branch"])
def test_ordinary_branch_names_are_accepted(branch):
    assert check_branch(branch) == branch


@pytest.mark.parametrize("url", [
    "file:///srv/other-tenant/repo", "/work/main", "../repo", "ext::sh -c touch% /tmp/x",
    "ssh://-oProxyCommand=touch%20/tmp/x/repo", "git@github.com:org/repo.git",
    "http://example.com/repo.git", "-uhttps://example.com/x", "https://u:pw@github.com/a/b",
    "https:///no-host", "https://example.com/repo.git\n--upload-pack=x",
])
def test_links_other_than_https_are_refused_by_default(url):
    with pytest.raises(UnsafeRepository):
        check_repository_url(url, {"https"})


def test_https_links_are_accepted_and_ssh_ones_when_allowed():
    assert check_repository_url("https://github.com/org/repo.git", {"https"})
    assert check_repository_url("git@github.com:org/repo.git", {"https", "ssh"})
    assert check_repository_url("ssh://git@example.com/org/repo.git", {"ssh"})


def test_git_itself_refuses_a_local_repository_when_file_is_not_allowed(tmp_path):
    repo = make_repo(tmp_path / "other-tenant")
    with pytest.raises(GitError):
        Git(timeout=30).run(tmp_path, "clone", "--quiet", "--", str(repo), "stolen")
    assert not (tmp_path / "stolen" / "README.md").exists()


def test_a_fetch_with_an_option_as_branch_runs_nothing(tmp_path):
    marker = Path("/tmp") / f"PWNED-{uuid.uuid4().hex}"
    repo = make_repo(tmp_path / "repo")
    with pytest.raises(UnsafeRepository):
        repository.sync(LOCAL, tmp_path / "cache", str(repo),
                        f"--upload-pack=touch {marker};git-upload-pack", LIMITS)
    assert not marker.exists()


def hostile_repository(path: Path, big_bytes: int) -> Path:
    return add_hostile_content(make_repo(path), big_bytes)


def add_hostile_content(repo: Path, big_bytes: int) -> Path:
    (repo / "zero.py").symlink_to("/dev/zero")
    (repo / "passwd.py").symlink_to("/etc/passwd")
    (repo / "big.py").write_bytes(b"x = 1\n" * (big_bytes // 6))
    (repo / os.fsdecode(b"caf\xe9.py")).write_bytes(b"print('caf\xe9')\n")
    commit_all(repo, "hostile content")
    return repo


def test_an_analysis_follows_no_symlink_reads_no_large_file_and_counts_latin1_names(tmp_path):
    repo = hostile_repository(tmp_path / "repo", big_bytes=3 * 1024 * 1024)
    cache = tmp_path / "cache"
    head = repository.sync(LOCAL, cache, str(repo), "main", LIMITS)

    analysis = analyze_full(LOCAL, cache, head, LIMITS)

    # app.py, test_app.py and caf\xe9.py: 2 + 5 + 1 lines. Not zero.py, passwd.py, big.py.
    assert analysis.languages["Python"] == {"files": 3, "lines": 8}
    assert analysis.skipped["files"] == {
        "big.py": "larger than 1048576 bytes",
        "passwd.py": "symlink (not followed)",
        "zero.py": "symlink (not followed)",
    }
    assert analysis.skipped["more"] == 0


def test_the_read_budget_stops_an_analysis_and_says_what_it_did_not_read(tmp_path):
    repo = make_repo(tmp_path / "repo")
    for i in range(8):
        (repo / f"mod{i}.py").write_bytes(b"y = 2\n" * 40_000)  # 240 kB each
    commit_all(repo)
    cache = tmp_path / "cache"
    head = repository.sync(LOCAL, cache, str(repo), "main", LIMITS)

    analysis = analyze_full(LOCAL, cache, head, ReadLimits(max_read_bytes=500_000))

    over = [p for p, why in analysis.skipped["files"].items()
            if why == "analysis read limit reached" and p.endswith(".py")]
    # src/app.py, tests/test_app.py and mod0-7, less what the budget left unread.
    assert over and analysis.languages["Python"]["files"] == 2 + 8 - len(over)


def test_an_incremental_analysis_of_hostile_changes_counts_like_a_full_one(tmp_path):
    repo = make_repo(tmp_path / "repo")
    cache = tmp_path / "cache"
    base = repository.sync(LOCAL, cache, str(repo), "main", LIMITS)
    first = analyze_full(LOCAL, cache, base, LIMITS)
    add_hostile_content(repo, big_bytes=2 * 1024 * 1024)
    (repo / "src" / "app.py").unlink()
    commit_all(repo, "remove app")
    head = repository.sync(LOCAL, cache, str(repo), "main", LIMITS)
    previous = {"commit_sha": base, "languages": first.languages,
                "skipped": first.skipped}

    incremental = analyze_changes(LOCAL, cache, previous, head, LIMITS)

    assert incremental.languages == analyze_full(LOCAL, cache, head, LIMITS).languages
    assert "caf\\xe9.py" in (incremental.changed_files or [])
    assert incremental.skipped["files"]["zero.py"] == "symlink (not followed)"


def test_a_repository_over_its_size_limit_is_refused(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "noise.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    commit_all(repo)
    with pytest.raises(UnsafeRepository, match="over the"):
        repository.sync(LOCAL, tmp_path / "cache", str(repo), "main",
                        ReadLimits(max_repository_bytes=1024 * 1024))


class ThrottledFiles(http.server.SimpleHTTPRequestHandler):
    """Serves a directory 64 KiB every ``pause`` seconds, counting what it sent:
    git's dumb HTTP protocol fetching a repository slowly enough to be watched."""

    pause = 0.008  # about 8 MB/s
    sent = 0

    def copyfile(self, source, outputfile) -> None:
        try:
            while chunk := source.read(64 * 1024):
                outputfile.write(chunk)
                type(self).sent += len(chunk)
                time.sleep(self.pause)
        except (BrokenPipeError, ConnectionResetError):
            pass  # git was killed mid-transfer: what the test wants

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def served_slowly(repo: Path, tmp_path: Path,
                  pause: float) -> Iterator[tuple[str, type[ThrottledFiles]]]:
    """``repo``'s main branch over dumb HTTP, as one pack, at 64 KiB a ``pause``:
    its URL, and the handler class counting what was sent."""
    served = tmp_path / f"served-{uuid.uuid4().hex[:6]}.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(repo), str(served))
    git(served, "repack", "-a", "-d", "--quiet")
    git(served, "update-server-info")
    handler = type("Handler", (ThrottledFiles,), {"pause": pause, "sent": 0})
    with http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(served))) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/", handler
        finally:
            server.shutdown()


HTTP = Git(timeout=60, allowed_protocols=frozenset({"http"}))


def test_a_huge_repository_is_stopped_while_it_is_fetched_not_after(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "noise.bin").write_bytes(os.urandom(24 * 1024 * 1024))
    commit_all(repo)
    with served_slowly(repo, tmp_path, pause=0.008) as (url, served), pytest.raises(
            UnsafeRepository, match="fetch was stopped at"):
        repository.sync(HTTP, tmp_path / "cache", url, "main",
                        ReadLimits(max_repository_bytes=2 * 1024 * 1024))
    assert served.sent < 12 * 1024 * 1024  # git was killed early in the transfer
    assert not (tmp_path / "cache").exists()


def test_what_an_earlier_stopped_fetch_left_does_not_count_against_the_limit(tmp_path):
    repo = make_repo(tmp_path / "repo")
    cache = tmp_path / "cache"
    limits = ReadLimits(max_repository_bytes=4 * 1024 * 1024)
    repository.sync(LOCAL, cache, str(repo), "main", limits)
    # A temporary pack of a fetch that was killed: git never counts it as kept.
    (cache / "objects" / "pack" / "tmp_pack_Xk3Jq1").write_bytes(os.urandom(3 * 1024 * 1024))
    (repo / "more.bin").write_bytes(os.urandom(1536 * 1024))
    head = commit_all(repo)

    # About 1.3 MB/s: the fetch lasts a second, watched a few times over.
    with served_slowly(repo, tmp_path, pause=0.05) as (url, served):
        assert repository.sync(HTTP, cache, url, "main", limits) == head
    assert served.sent > 1024 * 1024


def test_hooks_and_config_planted_in_the_cache_never_run_in_the_worker(tmp_path):
    # The fixer's own checkout is tested with the sandbox (tests/acceptance/sandbox):
    # the worker never runs git in it. Here: the cache, which the worker does use.
    marker = tmp_path / "ran"
    repo = make_repo(tmp_path / "repo")
    cache = tmp_path / "cache"
    repository.sync(LOCAL, cache, str(repo), "main", LIMITS)
    for hook in ("post-checkout", "pre-auto-gc", "reference-transaction", "post-index-change"):
        path = cache / "hooks" / hook
        path.write_text(f"#!/bin/sh\necho {hook} >> {marker}\n")
        path.chmod(0o755)
    with open(cache / "config", "a") as config:
        config.write(f"[core]\n\tfsmonitor = touch {marker}\n"
                     f"[diff]\n\texternal = touch {marker}\n")
    (repo / "src" / "app.py").write_text("def add(a, b):\n    return a + b\n")
    base = git(repo, "rev-parse", "HEAD~0").strip()
    head = commit_all(repo)

    assert repository.sync(LOCAL, cache, str(repo), "main", LIMITS) == head
    previous = {"commit_sha": base, "languages": {}, "skipped": {}}
    analyze_changes(LOCAL, cache, previous, head, LIMITS)
    analyze_full(LOCAL, cache, head, LIMITS)

    assert not marker.exists(), marker.read_text()

"""A linked repository as the worker reads it: from git's objects, never a working tree.

The cache keeps one bare repository per link and fetches the linked branch
into it by URL, so no remote, hook or setting of a checkout is ever written
there. Reading a repository means reading its tree and blobs:

* a symlink is a blob holding its target's name: recorded, never followed,
  so ``zero.py -> /dev/zero`` or ``-> /etc/passwd`` reads nothing outside;
* a blob over the per-file cap is never held in memory (its size is known
  before it is read, from the tree or from git's answer), and everything once
  the per-analysis cap is spent is recorded as skipped;
* names are bytes, as git keeps them; they are shown with undecodable bytes
  escaped (``caf\\xe9.py``), so a Latin-1 name is counted like any other;
* a fetch that makes the repository larger than its cap is refused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .commands import CommandStopped
from .config import ReadLimits
from .git import Git, GitError, UnsafeRepository, check_branch, check_repository_url

# git ls-tree modes: a regular file, an executable one, a symlink, a submodule.
REGULAR_MODES = frozenset({"100644", "100755"})
SYMLINK_MODE = "120000"


@dataclass(frozen=True)
class Entry:
    """One path of a tree: its mode, object id, size (blobs only) and name as bytes."""

    mode: str
    sha: str
    size: int | None
    name: bytes

    @property
    def path(self) -> str:
        """The name for people and JSON: undecodable bytes escaped, never an error."""
        return self.name.decode("utf-8", errors="backslashreplace")

    @property
    def is_regular(self) -> bool:
        return self.mode in REGULAR_MODES


@dataclass(frozen=True)
class Change:
    """A path that differs between two commits: its entry before and after (None: absent)."""

    name: bytes
    old: Entry | None
    new: Entry | None


def sync(git: Git, path: Path, url: str, branch: str, limits: ReadLimits) -> str:
    """Fetch ``branch`` of ``url`` into the bare repository at ``path``; return its head.

    Raises:
        UnsafeRepository: the URL, the branch or the fetched size is refused.
        GitError: git could not fetch (retried by the caller's job).
    """
    check_repository_url(url, git.allowed_protocols)
    check_branch(branch)
    if not (path / "HEAD").is_file():
        path.mkdir(parents=True, exist_ok=True)
        git.run(path, "init", "--quiet", "--bare")
    ref = f"refs/heads/{branch}"
    limit = limits.max_repository_bytes
    kept, packs = _pack_bytes(git, path), _inodes(path / "objects" / "pack")
    try:
        # By URL, not through a configured remote: the cache's config stays git's default.
        git.run(path, "fetch", "--quiet", "--no-tags", "--no-recurse-submodules",
                "--", url, f"+{ref}:{ref}",
                watch=lambda: _over_limit(path / "objects" / "pack", kept, packs, limit))
    except CommandStopped as stopped:
        shutil.rmtree(path, ignore_errors=True)  # refused for good: keep nothing of it
        raise UnsafeRepository(str(stopped)) from None
    size = _pack_bytes(git, path)
    if size > limit:
        shutil.rmtree(path, ignore_errors=True)
        raise UnsafeRepository(
            f"repository is {size // 2**20} MiB, over the {limit // 2**20} MiB limit")
    return git.run(path, "rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}"
                   ).decode().strip()


def has_commit(git: Git, repo: Path, sha: str) -> bool:
    return git.succeeds(repo, "cat-file", "-e", f"{sha}^{{commit}}")


def tree(git: Git, repo: Path, commit: str) -> list[Entry]:
    """Every path of ``commit``, recursively, with blob sizes."""
    out = git.run(repo, "ls-tree", "-r", "-l", "-z", "--full-tree", commit)
    return [_entry(record) for record in out.split(b"\0") if record]


def top_level(git: Git, repo: Path, commit: str) -> list[Entry]:
    """The paths at the root of ``commit``'s tree."""
    out = git.run(repo, "ls-tree", "-l", "-z", "--full-tree", commit)
    return [_entry(record) for record in out.split(b"\0") if record]


def changes(git: Git, repo: Path, base: str, head: str) -> list[Change]:
    """The paths that differ between ``base`` and ``head``, renames as delete + add."""
    out = git.run(repo, "diff-tree", "-r", "-z", "--no-renames", "--no-ext-diff",
                  "--no-textconv", base, head)
    fields = out.split(b"\0")
    found: list[Change] = []
    # Records: ":old_mode new_mode old_sha new_sha status\0name\0"
    for meta, name in zip(fields[0::2], fields[1::2], strict=False):
        if not meta.startswith(b":"):
            continue
        old_mode, new_mode, old_sha, new_sha, _status = meta[1:].decode().split(" ")
        found.append(Change(
            name=name,
            old=None if set(old_sha) == {"0"} else Entry(old_mode, old_sha, None, name),
            new=None if set(new_sha) == {"0"} else Entry(new_mode, new_sha, None, name),
        ))
    return found


@contextmanager
def blob_reader(git: Git, repo: Path) -> Iterator[BlobReader]:
    """One ``git cat-file --batch`` for many reads; killed if the block raises."""
    process = git.popen(repo, "cat-file", "--batch")
    try:
        yield BlobReader(process)
    finally:
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


class BlobReader:
    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process

    def size_and_content(self, sha: str, max_bytes: int) -> tuple[int, bytes | None]:
        """The blob's size, and its bytes if it is at most ``max_bytes`` long."""
        assert self._process.stdin and self._process.stdout
        self._process.stdin.write(f"{sha}\n".encode())
        self._process.stdin.flush()
        header = self._process.stdout.readline().split()
        if len(header) != 3 or header[1] != b"blob":
            raise GitError(f"git cat-file: {sha} is not a blob")
        size = int(header[2])
        # The content, then a newline. A blob over the cap is read past, never
        # kept: a few MiB of packed zeros can be gigabytes here.
        content = self._read(size + 1, keep=size <= max_bytes)
        return size, content[:size] if size <= max_bytes else None

    def _read(self, count: int, *, keep: bool) -> bytes:
        assert self._process.stdout
        chunks, left = [], count
        while left:
            chunk = self._process.stdout.read(min(left, 1 << 16))
            if not chunk:
                raise GitError("git cat-file ended early")
            if keep:
                chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)


def read_blobs(
    reader: BlobReader, entries: Iterable[Entry], limits: ReadLimits, budget: list[int],
    skipped: dict[str, str],
) -> Iterator[tuple[Entry, bytes]]:
    """The content of each regular, small-enough entry; the others go to ``skipped``.

    ``budget`` is a one-item list of bytes still allowed, shared across calls
    of one analysis.
    """
    for entry in entries:
        if entry.mode == SYMLINK_MODE:
            skipped[entry.path] = "symlink (not followed)"
            continue
        if not entry.is_regular:
            skipped[entry.path] = "not a regular file"
            continue
        if entry.size is not None and entry.size > limits.max_file_bytes:
            skipped[entry.path] = f"larger than {limits.max_file_bytes} bytes"
            continue
        if budget[0] <= 0:
            skipped[entry.path] = "analysis read limit reached"
            continue
        size, content = reader.size_and_content(entry.sha, limits.max_file_bytes)
        if content is None:
            skipped[entry.path] = f"larger than {limits.max_file_bytes} bytes"
            continue
        budget[0] -= size
        yield entry, content


def _entry(record: bytes) -> Entry:
    meta, _, name = record.partition(b"\t")
    mode, _kind, sha, size = meta.decode().split()
    return Entry(mode, sha, None if size == "-" else int(size), name)


def _over_limit(pack_dir: Path, kept: int, packs: set[int], limit: int) -> str | None:
    """Why to stop a fetch now: what the cache kept before it (``kept`` bytes)
    and what it has written so far outgrew ``limit``. Git writes what arrives
    as one pack (``fetch.unpackLimit=1``, see ``Git``), so what arrives is each
    file in ``pack_dir`` that was not there before (by inode: a file git
    renames, or links under its final name, counts once). Leftovers of an
    earlier, stopped fetch were there before and count nothing."""
    arriving: dict[int, int] = {}
    try:
        entries = list(os.scandir(pack_dir))
    except OSError:
        return None
    for entry in entries:
        try:
            stat = entry.stat(follow_symlinks=False)
        except OSError:  # renamed or removed by git since the listing
            continue
        if stat.st_ino not in packs:
            arriving[stat.st_ino] = stat.st_size
    size = kept + sum(arriving.values())
    if size <= limit:
        return None
    return (f"repository is over the {limit // 2**20} MiB limit: its fetch was stopped at "
            f"{size // 2**20} MiB")


def _inodes(directory: Path) -> set[int]:
    try:
        return {entry.inode() for entry in os.scandir(directory)}
    except OSError:
        return set()


def _pack_bytes(git: Git, repo: Path) -> int:
    stats = dict(
        line.split(": ", 1) for line in git.run(repo, "count-objects", "-v").decode().splitlines()
        if ": " in line
    )
    # KiB, loose and packed objects alike.
    return (int(stats.get("size", 0)) + int(stats.get("size-pack", 0))) * 1024

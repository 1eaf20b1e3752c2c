"""The worker's git: repository links and branch names checked, nothing of a checkout trusted.

Every git command of the worker goes through :class:`Git`, which runs git with

* no configuration but the repository's own and these overrides: no system or
  global config, no hooks (``core.hooksPath=/dev/null``), no fsmonitor, no
  credential helpers or prompts;
* an explicit protocol allow-list (``protocol.allow=never`` plus each allowed
  one, and ``GIT_ALLOW_PROTOCOL`` for transports git spawns), so ``file://``,
  ``ext::`` and local paths are refused unless a deployment allows them;
* an environment of its own, not the worker's (no secret reaches git or a
  helper it might start);
* output kept as bytes: file names in a repository are bytes, not UTF-8.

Diff-like commands get ``--no-ext-diff --no-textconv`` from their callers,
which know which commands take them.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .commands import CommandResult, Watch, run_command
from .errors import PermanentError

# Transports a deployment may allow; "file" is for tests and local mirrors.
KNOWN_PROTOCOLS = frozenset({"https", "ssh", "file"})
# scp-like ssh syntax: user@host:path (git treats it as ssh).
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._~-]+@[A-Za-z0-9.-]+:(?!//)")
_MAX_URL = 2048
_MAX_BRANCH = 255


class GitError(RuntimeError):
    """A git command failed; the message carries git's own words (retried)."""


class UnsafeRepository(PermanentError):
    """A repository link or branch name that the worker refuses to use."""


def check_repository_url(url: str, allowed_protocols: Iterable[str]) -> str:
    """``url`` if it is a repository URL of an allowed protocol.

    Raises:
        UnsafeRepository: saying what is wrong with it.
    """
    allowed = frozenset(allowed_protocols)
    if not url or len(url) > _MAX_URL or any(c.isspace() or ord(c) < 32 for c in url):
        raise UnsafeRepository("repository URL is empty, too long or has control characters")
    if url.startswith("-"):
        raise UnsafeRepository("repository URL must not start with '-'")
    if _SCP_LIKE.match(url):
        protocol = "ssh"
    elif "://" in url:
        protocol = urlsplit(url).scheme.lower()
        if protocol == "git+ssh" or protocol == "ssh+git":
            protocol = "ssh"
    elif "::" in url:
        protocol = url.split("::", 1)[0]  # git's transport::address, e.g. ext::
    else:
        protocol = "file"  # a local path
    if protocol not in allowed:
        raise UnsafeRepository(
            f"repository URLs may be {', '.join(sorted(allowed)) or 'nothing'}; "
            f"this one is {protocol}")
    if protocol in ("https", "ssh") and "://" in url:
        parts = urlsplit(url)
        if not parts.hostname or parts.hostname.startswith("-"):
            raise UnsafeRepository("repository URL has no usable host name")
        if parts.password:
            raise UnsafeRepository("repository URL must not carry a password")
    return url


def check_branch(name: str) -> str:
    """``name`` if it is a branch name git itself accepts and cannot take as an option.

    Raises:
        UnsafeRepository: saying why it is refused.
    """
    if (not name or len(name) > _MAX_BRANCH or name.startswith("-") or "@{" in name
            or any(ord(c) < 32 or ord(c) == 127 for c in name)):
        raise UnsafeRepository(f"branch name {name[:80]!r} is not allowed")
    result = subprocess.run(
        ["git", "check-ref-format", "--branch", name],
        capture_output=True, env=_environment(frozenset()), timeout=10, check=False,
    )
    if result.returncode != 0:
        raise UnsafeRepository(f"branch name {name[:80]!r} is not a valid git branch name")
    return name


@dataclass(frozen=True)
class Git:
    """Runs git the hardened way described above, each call bounded by ``timeout``."""

    timeout: float
    allowed_protocols: frozenset[str] = frozenset({"https"})

    def local(self) -> Git:
        """This git for the worker's own repositories (clones between its directories)."""
        return dataclasses.replace(self, allowed_protocols=frozenset({"file"}))

    def run(self, cwd: Path, *args: str, ok_codes: tuple[int, ...] = (0,),
            watch: Watch | None = None) -> bytes:
        """git's standard output for ``args`` run in ``cwd``.

        Raises:
            GitError: git exited with a code outside ``ok_codes``; its message in it.
            CommandStopped: ``watch`` stopped it (see ``run_command``).
        """
        result = self.result(cwd, *args, watch=watch)
        if result.returncode not in ok_codes:
            words = (result.stderr or result.stdout).strip()
            raise GitError(f"git {args[0]} failed: {words.decode(errors='replace')[-2000:]}")
        return result.stdout

    def succeeds(self, cwd: Path, *args: str) -> bool:
        """Whether git exits 0 for ``args`` (a question, such as ``cat-file -e``)."""
        return self.result(cwd, *args).returncode == 0

    def result(self, cwd: Path, *args: str, watch: Watch | None = None) -> CommandResult[bytes]:
        command = ["git", *self._overrides(), *args]
        return run_command(command, cwd=cwd, env=_environment(self.allowed_protocols),
                           timeout=self.timeout, text=False, watch=watch)

    def popen(self, cwd: Path, *args: str) -> subprocess.Popen[bytes]:
        """git ``args`` started with pipes to talk to (``cat-file --batch``), hardened alike."""
        return subprocess.Popen(
            ["git", *self._overrides(), *args], cwd=cwd, env=_environment(self.allowed_protocols),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _overrides(self) -> list[str]:
        config = {
            "core.hooksPath": "/dev/null",
            "core.fsmonitor": "false",
            "core.askPass": "",
            "credential.helper": "",
            "submodule.recurse": "false",
            # What a fetch receives stays one pack, never loose objects: the
            # size watch of repository.sync reads it as it grows.
            "fetch.unpackLimit": "1",
            "protocol.allow": "never",
            **{f"protocol.{p}.allow": "always" for p in sorted(self.allowed_protocols)},
        }
        return [arg for key, value in config.items() for arg in ("-c", f"{key}={value}")]


def _environment(allowed_protocols: frozenset[str]) -> dict[str, str]:
    # Git's own environment, not the worker's: nothing secret, nothing that
    # points git at a config, an askpass helper or an ssh command.
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": ":".join(sorted(allowed_protocols)) or "none",
        "GIT_OPTIONAL_LOCKS": "0",
    }

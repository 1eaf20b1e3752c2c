"""The fixer's checkout, and the patch taken from it without trusting it.

The fixer may write anything into its checkout, ``.git`` included: hooks,
``core.fsmonitor``, ``diff.external``, filters, a ``.git`` file pointing
elsewhere. So the worker never runs git with the checkout's repository.
Before the fixer starts, the worker keeps the commit in ``private/base.git``
(a bare clone the fixer never sees); after, it computes the patch with that
repository, a private index and the checkout as a bare work tree, with no
system or global config, hooks, fsmonitor, external diff or textconv. The
checkout itself is a standalone clone (``--no-local``): nothing in it points
at the repository cache, which is never mounted or written by a fixer.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .layout import SandboxLayout
from .report import clean_text

PATCH_LIMIT = 5 * 2**20
# Settings that would run a program of the fixer's choosing, turned off whatever
# a config file says (only base.git's is read, and the worker wrote it).
_SAFE = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
         "-c", "core.untrackedCache=false", "-c", "core.attributesFile=/dev/null",
         "-c", "protocol.allow=never", "-c", "protocol.file.allow=always")


class PatchError(RuntimeError):
    """The patch could not be taken (git failed, or it is too large)."""


def prepare(layout: SandboxLayout, cache: Path, commit: str, *, timeout: float) -> None:
    """A fresh sandbox: ``base.git`` for the worker, a standalone checkout of ``commit``.

    Raises:
        PatchError: git failed.
    """
    layout.create()
    _git(["clone", "--quiet", "--bare", "--shared", "--", str(cache), str(layout.base_git)],
         timeout=timeout)
    # The commit may no longer be a branch head of the cache (a later fetch, a
    # force push): name it, so the standalone clone below carries it.
    _git(["update-ref", "refs/heads/pts-fix", commit], cwd=layout.base_git, timeout=timeout)
    _git(["clone", "--quiet", "--no-local", "--no-checkout", "--", str(layout.base_git),
          str(layout.checkout)], timeout=timeout)
    _git(["checkout", "--quiet", "--detach", commit], cwd=layout.checkout, timeout=timeout)
    # The fixer needs no remote; its URL is a host path, or one with credentials.
    _git(["remote", "remove", "origin"], cwd=layout.checkout, timeout=timeout)


def patch(layout: SandboxLayout, commit: str, *, timeout: float,
          limit: int = PATCH_LIMIT) -> str:
    """Everything the fixer changed, new files included, as one patch.

    Raises:
        PatchError: git failed or the patch is larger than ``limit`` bytes.
    """
    env = {
        "GIT_DIR": str(layout.base_git), "GIT_WORK_TREE": str(layout.checkout),
        "GIT_INDEX_FILE": str(layout.index), "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull, "GIT_ATTR_NOSYSTEM": "1",
        "HOME": str(layout.private), "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0",
    }
    # The fixer owns work/: it may have swapped its checkout for a link to a
    # host directory (/etc), which git would then read into the patch. The
    # parents are the worker's, so a real directory here is the real checkout.
    checkout = layout.checkout
    if checkout.is_symlink() or not checkout.is_dir() or \
            os.path.realpath(checkout) != str(checkout):
        raise PatchError("the checkout is no longer a directory of the sandbox's own")
    layout.index.unlink(missing_ok=True)
    _git(["read-tree", commit], env=env, cwd=layout.private, timeout=timeout)
    _git(["add", "--all", "--", "."], env=env, cwd=layout.checkout, timeout=timeout)
    out = layout.private / "patch.diff"
    with open(out, "wb") as sink:
        _git(["diff", "--cached", "--no-ext-diff", "--no-textconv", "--no-color", commit],
             env=env, cwd=layout.private, timeout=timeout, stdout=sink)
    size = out.stat().st_size
    if size > limit:
        raise PatchError(f"the patch is {size} bytes, more than {limit}")
    return clean_text(out.read_bytes())


def _git(args: list[str], *, timeout: float, cwd: Path | None = None,
         env: dict[str, str] | None = None, stdout=subprocess.PIPE) -> str:
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0", "LANG": "C"}
    try:
        result = subprocess.run(["git", *_SAFE, *args], cwd=cwd, env={**base, **(env or {})},
                                stdout=stdout, stderr=subprocess.PIPE, timeout=timeout,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    except subprocess.TimeoutExpired:
        raise PatchError(f"git {args[0]} took longer than {timeout:.0f}s") from None
    if result.returncode != 0:
        message = clean_text(result.stderr, 500).strip()
        raise PatchError(f"git {args[0]} failed: {message}")
    return clean_text(result.stdout) if isinstance(result.stdout, bytes) else ""

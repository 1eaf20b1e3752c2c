"""Where a fix job's sandbox lives, derived from its id and nothing else.

    <workspace>/sandboxes/<fix job id>/     0711, the worker's
        work/                               the fixer's: mounted at /sandbox
            checkout/                       SANDBOX: the repository at the commit
            bug.json                        BUG_REPORT_JSON
            report.json                     FIX_REPORT (the fixer writes it, or not)
        private/                            0700, the worker's: never mounted
            base.git/                       the commit, for the patch (the fixer never writes it)
            index                           the index the patch is computed with
            output.log                      the fixer's output, capped

Cleanup and the sweeper rebuild these paths from the fix job id, so a payload
can never name another job's sandbox, or anything else, for deletion.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

# Where the fixer sees its own directory, in a container.
CONTAINER_ROOT = PurePosixPath("/sandbox")


@dataclass(frozen=True)
class SandboxLayout:
    root: Path

    @classmethod
    def of(cls, sandboxes_dir: Path, fix_job_id: str) -> SandboxLayout:
        """The layout of ``fix_job_id``'s sandbox.

        Raises:
            ValueError: ``fix_job_id`` is not a UUID (so it cannot be ``..`` or a path).
        """
        canonical = str(uuid.UUID(str(fix_job_id)))
        return cls(Path(sandboxes_dir) / canonical)

    @property
    def fix_job_id(self) -> str:
        return self.root.name

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def checkout(self) -> Path:
        return self.work / "checkout"

    @property
    def bug_report(self) -> Path:
        return self.work / "bug.json"

    @property
    def report(self) -> Path:
        return self.work / "report.json"

    @property
    def private(self) -> Path:
        return self.root / "private"

    @property
    def base_git(self) -> Path:
        return self.private / "base.git"

    @property
    def index(self) -> Path:
        return self.private / "index"

    @property
    def output(self) -> Path:
        return self.private / "output.log"

    def create(self) -> None:
        """Make the directories, empty (an earlier attempt's are removed first)."""
        self.remove()
        lock_workspace(self.root.parent.parent)
        self.root.mkdir(mode=0o711)
        os.chmod(self.root, 0o711)  # whatever the umask: others pass through, never list
        self.work.mkdir(mode=0o700)
        self.private.mkdir(mode=0o700)

    def hand_to(self, uid: int, gid: int) -> None:
        """Give ``work/`` to the fixer's user (when the worker may: it runs as root)."""
        if os.geteuid() != 0:
            return
        for directory, dirs, files in os.walk(self.work):
            os.chown(directory, uid, gid, follow_symlinks=False)
            for name in dirs + files:
                os.chown(os.path.join(directory, name), uid, gid, follow_symlinks=False)

    def remove(self) -> bool:
        """Delete the whole sandbox; True if there was one. Never follows a symlink."""
        if not self.root.exists() and not self.root.is_symlink():
            return False
        if self.root.is_symlink():
            self.root.unlink()
            return True
        # rmtree works on file descriptors here: a symlink the fixer left is
        # removed, never followed. A directory it made unwritable is fixed first.
        shutil.rmtree(self.root, onerror=_make_writable_and_retry)
        return True

    def container_path(self, path: Path) -> PurePosixPath:
        """Where ``path`` (inside ``work/``) is seen in the container."""
        return CONTAINER_ROOT / path.relative_to(self.work).as_posix()


def lock_workspace(workspace_dir: Path) -> None:
    """Modes that keep a fixer (of the process runtime, as another uid) out.

    The workspace and its sandboxes directory may be passed through, not
    listed; the repository cache is the worker's alone.
    """
    for directory, mode in ((workspace_dir, 0o711), (workspace_dir / "repos", 0o700),
                            (workspace_dir / "sandboxes", 0o711)):
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, mode)


def _make_writable_and_retry(function, path, _exc_info) -> None:
    parent = os.path.dirname(path)
    if os.path.isdir(parent) and not os.path.islink(parent):
        os.chmod(parent, 0o700)
    function(path)


def sandbox_ids(sandboxes_dir: Path) -> list[str]:
    """The fix job ids that have a sandbox directory (anything else there is ignored)."""
    if not sandboxes_dir.is_dir():
        return []
    found = []
    for entry in sandboxes_dir.iterdir():
        try:
            found.append(str(uuid.UUID(entry.name)))
        except ValueError:
            continue
    return found

"""The process runtime: the fixer as a restricted subprocess, for the embedded
demo and machines without Docker. It is NOT a boundary for untrusted code:
only the container runtime is (see the README's table of what each stops).

As root, each fix job's fixer runs:

* in new network, PID, mount, IPC and UTS namespaces (``unshare``): no network
  at all (not even loopback), its own ``/proc`` (the worker's processes and
  their environments are not there), and fresh tmpfs over ``/tmp``, ``/run``
  (so no PostgreSQL or Docker socket) and the repository cache;
* as a uid of its own (``process_uid_base`` + a number derived from the fix
  job id), with no capabilities, ``no_new_privs`` and no supplementary groups,
  so the other sandboxes (0700, other uids) cannot be read;
* under rlimits: address space (memory), processes of its uid, CPU seconds,
  file size, no core dumps;
* killed as a whole: when the namespace's first process ends, or the worker
  stops it, the kernel kills every process in the PID namespace, ``setsid``
  or not; if the worker itself dies, ``PR_SET_PDEATHSIG`` does the same.

Not root, it uses a user namespace for the same namespaces when the kernel
allows unprivileged ones (then no uid of its own and no process rlimit: those
count all of the user's processes). Where the kernel refuses them too (a
container under Docker's default seccomp profile, a kernel with
``unprivileged_userns_clone=0``) it refuses to run a fixer: as the worker's own
user, in the worker's PID and network namespaces, a fixer could read the
worker's environment (``/proc/<pid>/environ``: ``DATABASE_URL`` and every
token) and reach the database; ``allow_unconfined`` runs a trusted one (the
demo's stand-in) anyway, with only rlimits and a process group. The environment
is the same exact contract as in a container.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from functools import cached_property
from pathlib import Path

from .config import SandboxConfig
from .layout import SandboxLayout
from .report import CappedOutput, read_report
from .runtime import FixerResult, FixerRun, SandboxError

logger = logging.getLogger(__name__)

_SLICE = 0.2
_UID_SPAN = 65536
PATH = "/usr/local/bin:/usr/bin:/bin"
# Run as root inside the new namespaces, before the fixer's uid is taken: hide
# the host's sockets and temporary files, the repository cache and the other
# sandboxes under fresh tmpfs, then put back the fixer's own directory, and,
# read-only, the directories under /tmp its program lives in ($keep, one per
# line: a fixer installed under /tmp must still start).
_INNER = r"""
set -e
size=$1 work=$2 repos=$3 sandboxes=$4 keep=$5
shift 5
IFS='
'
mount -t tmpfs -o mode=755,nosuid,nodev,size=1m tmpfs /run
mkdir /run/.work
mount --bind "$work" /run/.work
i=0
for dir in $keep; do
    mkdir /run/.keep$i && mount --bind "$dir" /run/.keep$i
    i=$((i + 1))
done
mount -t tmpfs -o mode=1777,nosuid,nodev,size="$size" tmpfs /tmp
for hidden in "$repos" "$sandboxes" /dev/shm; do
    if [ -d "$hidden" ]; then mount -t tmpfs -o mode=711,nosuid,nodev,size=1m tmpfs "$hidden"; fi
done
mkdir -p "$work"
mount --bind /run/.work "$work"
umount /run/.work
i=0
for dir in $keep; do
    mkdir -p "$dir" && mount --bind /run/.keep$i "$dir"
    mount -o remount,bind,ro,nosuid,nodev "$dir" && umount /run/.keep$i
    i=$((i + 1))
done
unset IFS
set +e
"$@"
"""


def program_dirs(command: list[str], workspace: Path) -> list[str]:
    """The directories under /tmp that ``command``'s program and scripts need.

    A file's own directory, or for a virtualenv's interpreter the virtualenv.
    Never one that holds or is inside the workspace: that would show the fixer
    the cache and the other sandboxes again.
    """
    tmp = Path("/tmp")
    kept: list[str] = []
    for arg in command:
        path = Path(arg)
        if not path.is_absolute() or "\n" in arg or not path.is_file():
            continue
        for candidate in dict.fromkeys([path, path.resolve()]):
            directory = candidate.parent
            if directory.name == "bin" and (directory.parent / "pyvenv.cfg").is_file():
                directory = directory.parent  # the interpreter needs its virtualenv
            near_workspace = (directory == workspace or directory in workspace.parents
                              or workspace in directory.parents)
            if tmp in directory.parents and not near_workspace and str(directory) not in kept:
                kept.append(str(directory))
    return kept


class ProcessRuntime:
    name = "process"
    isolates = False

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config

    def uid_of(self, fix_job_id: str) -> int:
        """The fix job's own uid (as root): the same for every attempt."""
        return self.config.process_uid_base + uuid.UUID(fix_job_id).int % _UID_SPAN

    @cached_property
    def _userns(self) -> bool:
        """Whether unprivileged user namespaces work here (tried once)."""
        try:
            return subprocess.run(
                ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork",
                 "--mount-proc", "true"], capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def argv(self, run: FixerRun) -> list[str]:
        """The command line that confines ``run.command``."""
        limits = self.config.limits
        root = os.geteuid() == 0
        cpu = max(int(run.seconds_left() * limits.cpus) + 1, 1)
        rlimits = [f"--as={limits.memory}", f"--cpu={cpu}", f"--fsize={limits.file_size}",
                   "--core=0", "--nofile=4096"]
        if root:
            rlimits.append(f"--nproc={limits.pids}")  # counts the job's own uid only
        confined = ["prlimit", *rlimits, "--", "setpriv", "--no-new-privs"]
        if root:
            uid = str(self.uid_of(run.fix_job_id))
            confined += ["--reuid", uid, "--regid", uid, "--clear-groups",
                         "--inh-caps=-all", "--bounding-set=-all"]
        confined += ["--", *run.command]
        if self.confinement() is None:  # allow_unconfined: rlimits and a process group
            return confined
        namespaces = ["unshare", "--net", "--pid", "--kill-child", "--mount-proc", "--ipc",
                      "--uts"]
        if not root:
            namespaces[1:1] = ["--user", "--map-root-user"]
        return ["setpriv", "--pdeathsig", "KILL", "--", *namespaces, "--",
                "sh", "-c", _INNER, "sh", str(limits.tmpfs), str(run.layout.work),
                str(self.config.workspace_dir / "repos"), str(self.config.sandboxes_dir),
                "\n".join(program_dirs(list(run.command),
                                        self.config.workspace_dir.resolve())),
                *confined]

    def confinement(self) -> str | None:
        """How this process can confine a fixer, or None if it cannot."""
        if os.geteuid() == 0:
            return "namespaces and a uid of its own"
        return "a user namespace" if self._userns else None

    def run(self, run: FixerRun) -> FixerResult:
        if self.confinement() is None:
            if not self.config.allow_unconfined:
                raise SandboxError(
                    "the process runtime cannot confine a fixer here: not root and no user "
                    "namespaces, so it would run as the worker's own user, able to read the "
                    "worker's environment and reach its network; run execute-fix with the "
                    "docker runtime (JOBS_SANDBOX__RUNTIME=docker)")
            logger.warning("fix job %s: the fixer runs unconfined, as the worker's own user "
                           "(JOBS_SANDBOX__ALLOW_UNCONFINED)", run.fix_job_id)
        self.cleanup(run.fix_job_id)
        layout = run.layout
        if os.geteuid() == 0:
            uid = self.uid_of(run.fix_job_id)
            layout.hand_to(uid, uid)
        env = {"PATH": PATH, "HOME": "/tmp", "LANG": "C.UTF-8",
               **run.environment(self.config, str(layout.work), str(layout.checkout))}
        output = CappedOutput(layout.output, self.config.output_limit)
        started = time.monotonic()
        proc = subprocess.Popen(
            self.argv(run), cwd=layout.checkout, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        _pidfile(layout).write_text(f"{proc.pid} {_start_time(proc.pid)}")
        assert proc.stdout is not None
        reader = threading.Thread(target=_copy, args=(proc.stdout.fileno(), output),
                                  daemon=True, name=f"fixer-output-{run.fix_job_id[:8]}")
        reader.start()
        timed_out = False
        try:
            while proc.poll() is None:
                if time.monotonic() >= run.deadline:
                    timed_out = True
                    break
                try:
                    proc.wait(timeout=_SLICE)
                except subprocess.TimeoutExpired:
                    continue
        finally:
            # Every way out (the deadline, TimeLimitExceeded, a lost lease) kills it all.
            self._kill(proc, run.fix_job_id)
            reader.join(timeout=5)
            proc.stdout.close()
            output.close()
        text = output.text()
        return FixerResult(
            exit_code=proc.returncode, output=text, output_cut=output.cut,
            report=read_report(layout.report, self.config.report_limit),
            timed_out=timed_out, limit_hit=None if timed_out else self._limit_hit(text),
            seconds=time.monotonic() - started)

    def _limit_hit(self, output: str) -> str | None:
        # rlimits leave no record but the fixer's own errors; read its last words.
        tail = output[-4000:]
        if "MemoryError" in tail or "Cannot allocate memory" in tail:
            return (f"fixer ran out of memory under its limit "
                    f"({self.config.limits.memory // 2**20} MiB of address space)")
        if re.search(r"Resource temporarily unavailable|BlockingIOError|can't fork", tail):
            return f"fixer hit its process limit ({self.config.limits.pids})"
        return None

    def _kill(self, proc: subprocess.Popen, fix_job_id: str) -> None:
        _killpg(proc.pid)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not refused
            logger.error("fixer process %d did not die", proc.pid)
        self._kill_uid(fix_job_id)

    def _kill_uid(self, fix_job_id: str) -> bool:
        """SIGKILL every process of the job's uid (as root); True if any was found."""
        if os.geteuid() != 0:
            return False
        uid = self.uid_of(fix_job_id)
        found = False
        for _ in range(20):  # a fork between scan and kill is caught next round
            if not _pids_of_uid(uid):
                return found
            found = True
            # kill(-1) as that uid reaches exactly that uid's processes.
            subprocess.run(["kill", "-KILL", "-1"], user=uid, group=uid, extra_groups=[],
                           capture_output=True, timeout=10)
            time.sleep(0.05)
        logger.error("fix job %s: processes of uid %d survive", fix_job_id, uid)
        return found

    def cleanup(self, fix_job_id: str) -> list[str]:
        removed = []
        layout = SandboxLayout.of(self.config.sandboxes_dir, fix_job_id)
        pid = _live_pid(layout)
        if pid is not None:
            _killpg(pid)
            removed.append(f"process group {pid}")
        if self._kill_uid(fix_job_id):
            removed.append(f"processes of uid {self.uid_of(fix_job_id)}")
        return removed

    def leftovers(self) -> dict[str, float]:
        found = {}
        root = self.config.sandboxes_dir
        for pidfile in root.glob("*/private/pid") if root.is_dir() else ():
            layout = SandboxLayout(pidfile.parent.parent)
            if _live_pid(layout) is not None:
                found[layout.fix_job_id] = pidfile.stat().st_mtime
        return found


def _copy(fd: int, output: CappedOutput) -> None:
    try:
        while chunk := os.read(fd, 65536):
            output.write(chunk)
    except (OSError, ValueError):  # closed under us: output ends
        pass


def _pidfile(layout: SandboxLayout) -> Path:
    return layout.private / "pid"


def _start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def _live_pid(layout: SandboxLayout) -> int | None:
    """The recorded fixer pid if that very process (same start time) still runs."""
    try:
        pid_text, started = _pidfile(layout).read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    return pid if _start_time(pid) == started else None


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _pids_of_uid(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids

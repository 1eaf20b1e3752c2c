"""Run an external command, bounded by the running job's time limit.

Dramatiq's TimeLimit raises an exception in the worker thread, but only between
Python bytecodes: a thread blocked in ``subprocess.run`` is not interrupted until
the child exits, and the child (and its children) would outlive the job. Here the
command runs in its own process group, is waited on in short slices, and the
whole group is killed when the deadline passes or the job is interrupted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AnyStr, Generic, Literal, overload

from dramatiq.middleware.time_limit import TimeLimitExceeded

# Grace between SIGTERM and SIGKILL for the process group.
TERMINATE_GRACE = 5.0
_SLICE = 0.2

# Deadline (time.monotonic()) of the job running on this thread, if any.
_deadline = threading.local()


@contextlib.contextmanager
def time_budget(seconds: float | None) -> Iterator[None]:
    """Give the block (a job, on this thread) ``seconds`` to run; None is no limit."""
    _deadline.at = None if seconds is None else time.monotonic() + seconds
    try:
        yield
    finally:
        _deadline.at = None


def seconds_left() -> float | None:
    """Seconds until the running job's time limit, or None outside a job."""
    deadline = getattr(_deadline, "at", None)
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


@dataclass(frozen=True)
class CommandResult(Generic[AnyStr]):
    """Exit code and output: ``str`` by default, ``bytes`` with ``text=False``."""

    args: Sequence[str]
    returncode: int
    stdout: AnyStr
    stderr: AnyStr


class CommandTimeout(TimeoutError):
    """The command outlived its timeout; its whole process group was killed."""

    def __init__(self, args: Sequence[str], timeout: float, stdout: str | bytes,
                 stderr: str | bytes) -> None:
        super().__init__(f"{args[0]} killed after {timeout:.1f}s")
        self.stdout, self.stderr = stdout, stderr


class CommandStopped(RuntimeError):
    """The command's ``watch`` objected; its whole process group was killed."""


# Called between slices of the wait: a reason to stop the command, or None.
Watch = Callable[[], str | None]


@overload
def run_command(
    args: Sequence[str], *, cwd: Path | str | None = ..., env: Mapping[str, str] | None = ...,
    timeout: float | None = ..., text: Literal[True] = ..., watch: Watch | None = ...,
) -> CommandResult[str]: ...


@overload
def run_command(
    args: Sequence[str], *, cwd: Path | str | None = ..., env: Mapping[str, str] | None = ...,
    timeout: float | None = ..., text: Literal[False], watch: Watch | None = ...,
) -> CommandResult[bytes]: ...


def run_command(
    args: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    text: bool = True,
    watch: Watch | None = None,
) -> CommandResult[Any]:
    """Run ``args`` and return its exit code and output (bytes if not ``text``).

    ``timeout`` defaults to what remains of the running job's time limit (no
    limit outside a job). Any exception while waiting, the job's own time limit
    included, kills the command's process group before propagating. ``watch``
    is asked every slice (0.2 s) while it runs.

    Raises:
        CommandTimeout: the command was still running at ``timeout``.
        TimeLimitExceeded: it was still running at the job's time limit.
        CommandStopped: ``watch`` gave a reason to stop it (the message).
    """
    at_job_limit = timeout is None
    if at_job_limit:
        timeout = seconds_left()
    proc = subprocess.Popen(
        list(args), cwd=cwd, env=None if env is None else dict(env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=text,
        start_new_session=True,  # its own process group, killed as one
    )
    waited = 0.0
    try:
        while True:
            try:
                stdout, stderr = proc.communicate(timeout=_SLICE)
                return CommandResult(args, proc.returncode, stdout, stderr)
            except subprocess.TimeoutExpired:
                waited += _SLICE
                objection = watch() if watch is not None else None
                if objection is not None:
                    _kill_group(proc)
                    raise CommandStopped(objection) from None
                if timeout is not None and waited >= timeout:
                    stdout, stderr = _kill_group(proc)
                    if at_job_limit:
                        raise TimeLimitExceeded(
                            f"{args[0]} killed at the job's time limit"
                        ) from None
                    raise CommandTimeout(args, timeout, stdout, stderr) from None
    except BaseException:
        if proc.poll() is None or _group_alive(proc.pid):
            _kill_group(proc)
        raise


def _kill_group(proc: subprocess.Popen) -> tuple[Any, Any]:
    """SIGTERM the group, then SIGKILL whatever is left after the grace period."""
    output: tuple[Any, Any] | None = None
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        output = proc.communicate(timeout=TERMINATE_GRACE)
    if output is None or _group_alive(proc.pid):
        _signal_group(proc.pid, signal.SIGKILL)
        try:
            output = proc.communicate(timeout=TERMINATE_GRACE)
        except subprocess.TimeoutExpired:  # a process that left the group holds the pipe
            proc.kill()
    empty = "" if proc.text_mode else b""  # type: ignore[attr-defined]  # set by Popen
    stdout, stderr = output or (empty, empty)
    return stdout or empty, stderr or empty


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a member we may not signal
        return True
    return True

"""What comes back from a fixer: its output (capped) and its report (checked).

Both are written by hostile code. The output is kept to its last
``limit`` bytes on disk, however much is printed. The report is read only if it
is a regular file under a size cap, opened without following links or
blocking on a FIFO, and each field is checked; bytes that are not UTF-8, NUL
bytes and control characters are replaced, so they can never stop the job
(PostgreSQL refuses NUL in text).
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

TESTS = ("passed", "failed", "not_run")
PR_URL_MAX = 500
SUMMARY_MAX = 4000
# Control characters but tab, newline and carriage return; NUL among them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_URL = re.compile(r"https://[^\s\x00-\x1f\x7f<>\"'`]{1,490}")


def clean_text(data: bytes | str, limit: int | None = None) -> str:
    """Text safe to store and show: valid UTF-8, no NUL or control characters."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    text = _CONTROL.sub("\ufffd", text)
    return text if limit is None else text[:limit]


class CappedOutput:
    """An append-only log file that keeps its last ``limit`` bytes.

    The file grows to at most twice ``limit`` before it is cut back, so memory
    stays at ``limit`` and disk at ``2 * limit`` whatever the fixer prints.
    """

    def __init__(self, path: Path, limit: int) -> None:
        self.path, self.limit = path, limit
        self.total = 0  # bytes the fixer wrote, kept or not
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._size = 0

    def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.total += len(chunk)
        if len(chunk) >= self.limit:  # no need to write what is cut at once
            chunk = chunk[-self.limit:]
            self._file.seek(0)
            self._file.truncate()
            self._size = 0
        self._file.write(chunk)
        self._size += len(chunk)
        if self._size > 2 * self.limit:
            self._cut()

    def _cut(self) -> None:
        self._file.flush()
        with open(self.path, "rb") as reader:
            reader.seek(-self.limit, os.SEEK_END)
            tail = reader.read()
        self._file.seek(0)
        self._file.truncate()
        self._file.write(tail)
        self._size = len(tail)

    @property
    def cut(self) -> bool:
        return self.total > self.limit

    def text(self) -> str:
        """The kept output, saying how much was cut before it (also once closed)."""
        if not self._file.closed:
            self._file.flush()
        with open(self.path, "rb") as reader:
            reader.seek(max(self._size - self.limit, 0))
            kept = reader.read()
        text = clean_text(kept)
        if self.cut:
            text = (f"[output cut: the fixer wrote {self.total} bytes; "
                    f"the last {len(kept)} are kept]\n" + text)
        return text

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class FixerReport:
    """The fixer's report, every field checked. ``problems`` says what was refused."""

    pr_url: str | None = None
    tests: str = "not_run"
    summary: str | None = None
    problems: tuple[str, ...] = field(default=())


def read_report(path: Path, limit: int) -> FixerReport:
    """The report at ``path``, or an empty one saying why it could not be used.

    Never raises for anything the fixer did, and never blocks: a FIFO, a
    device, a symlink, a directory or an oversized file is refused unread.
    """
    try:
        # O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        return FixerReport(problems=("no report written",))
    except OSError as error:
        if error.errno == errno.ELOOP:
            return FixerReport(problems=("report is a symbolic link: ignored",))
        return FixerReport(problems=(f"report cannot be opened: {error.strerror}",))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return FixerReport(problems=("report is not a regular file: ignored",))
        if info.st_size > limit:
            return FixerReport(problems=(f"report is larger than {limit} bytes: ignored",))
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # grew after fstat
        return FixerReport(problems=(f"report is larger than {limit} bytes: ignored",))
    return parse_report(data)


def parse_report(data: bytes) -> FixerReport:
    """Check the report's fields one by one; a bad field is dropped, not fatal."""
    try:
        document = json.loads(data.decode("utf-8", errors="replace"))
    except ValueError:
        return FixerReport(problems=("report is not valid JSON",))
    if not isinstance(document, dict):
        return FixerReport(problems=("report is not a JSON object",))
    problems: list[str] = []
    pr_url = _pr_url(document.get("pr_url"), problems)
    tests = document.get("tests", "not_run")
    if tests not in TESTS:
        problems.append(f"tests must be one of {', '.join(TESTS)}: ignored")
        tests = "not_run"
    summary = document.get("summary")
    if summary is not None and not isinstance(summary, str):
        problems.append("summary is not a string: ignored")
        summary = None
    if isinstance(summary, str):
        summary = clean_text(summary, SUMMARY_MAX)
    return FixerReport(pr_url=pr_url, tests=tests, summary=summary, problems=tuple(problems))


def _pr_url(value: Any, problems: list[str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append("pr_url is not a string: ignored")
    elif len(value) > PR_URL_MAX:
        problems.append(f"pr_url is longer than {PR_URL_MAX} characters: ignored")
    elif not _URL.fullmatch(value):
        problems.append("pr_url is not an https URL: ignored")
    else:
        return value
    return None

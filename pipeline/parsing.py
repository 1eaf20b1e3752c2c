"""Turn a raw bug report (free text and/or an intake form's JSON) into fields.

Pure functions, no database: :func:`parse_report` returns a :class:`ParsedReport`
or raises :class:`UnusableReport` with the reason. The fingerprint hashes the
error with its volatile parts (numbers, ids, quoted values, line numbers) taken
out, so two reports of the same crash get the same fingerprint.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

MAX_TEXT = 100_000

_SECTION = re.compile(
    r"^\s*(?:#+\s*)?(?P<name>steps(?: to reproduce)?|repro(?:duction)?(?: steps)?|"
    r"expected(?: behaviou?r| result)?|actual(?: behaviou?r| result)?|"
    r"description|summary|environment|url|page)\s*:?\s*(?P<rest>.*)$",
    re.IGNORECASE,
)
_ERROR = re.compile(
    r"\b(?P<type>[A-Z][A-Za-z0-9_.]*(?:Error|Exception|Fault|Panic))\s*:\s*(?P<message>.+)"
)
_JS_FRAME = re.compile(r"^\s*at\s+(?:(?P<fn>[\w$.<>\[\] ]+?)\s+\()?(?P<file>[^()\s]+?):"
                       r"(?P<line>\d+)(?::\d+)?\)?\s*$")
_PY_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<fn>\S+)')
_URL = re.compile(r"https?://[^\s)>\]\"']+")
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+(?P<item>.+)$")
_BROWSERS = ("Edge", "Chrome", "Firefox", "Safari", "Opera")
_OSES = ("Windows", "macOS", "Mac OS X", "iOS", "Android", "Linux", "ChromeOS")
_SEVERE = {
    "critical": ("data loss", "security", "vulnerab", "payment", "outage", "everyone",
                 "all users", "cannot log in", "can't log in", "production down"),
    "high": ("crash", "exception", "error", "broken", "fails", "cannot", "can't", "500"),
    "low": ("typo", "cosmetic", "alignment", "color", "colour", "spacing", "wording"),
}


class UnusableReport(ValueError):
    """Nothing in the report can be worked with; the message says why."""


@dataclass(frozen=True)
class StackFrame:
    function: str | None
    file: str
    line: int


@dataclass(frozen=True)
class ParsedReport:
    title: str
    description: str | None
    steps_to_reproduce: list[str] = field(default_factory=list)
    expected_behavior: str | None = None
    actual_behavior: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    stack_frames: list[StackFrame] = field(default_factory=list)
    page_url: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    severity: str = "medium"
    fingerprint: str | None = None


def parse_report(raw_text: str | None, raw_payload: dict[str, Any] | None) -> ParsedReport:
    """Every field we can find; the form's fields win over what the text says.

    Raises:
        UnusableReport: neither text nor form holds anything to work with.
    """
    text = (raw_text or "").strip()[:MAX_TEXT]
    form = _flatten_form(raw_payload or {})
    if not text and not any(form.values()):
        raise UnusableReport("the report has no text and no form fields")
    from_text = _parse_text(text)
    merged = {**from_text, **{k: v for k, v in form.items() if v}}

    title = merged.get("title") or _first_line(text) or merged.get("error_message")
    if not title and not merged.get("description") and not merged.get("error_message"):
        raise UnusableReport("the report has no title, description or error to work with")
    environment = {**from_text.get("environment", {}), **form.get("environment", {})}
    report = ParsedReport(
        title=str(title or "Untitled bug report")[:200],
        description=merged.get("description") or (text or None),
        steps_to_reproduce=list(merged.get("steps") or []),
        expected_behavior=merged.get("expected"),
        actual_behavior=merged.get("actual"),
        error_type=merged.get("error_type"),
        error_message=merged.get("error_message"),
        stack_frames=list(merged.get("frames") or []),
        page_url=merged.get("page_url"),
        environment=environment,
    )
    return _with_judgement(report, text)


def fingerprint(error_type: str | None, error_message: str | None,
                frames: list[StackFrame], title: str) -> str:
    """sha256 of the normalised error (or title): equal for the same bug."""
    if error_type or error_message:
        top = [f"{f.function or '?'}@{_basename(f.file)}" for f in frames[:3]]
        basis = "|".join([error_type or "", _normalise(error_message or ""), *top])
    else:
        basis = "title|" + _normalise(title)
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()


def guess_severity(text: str, has_error: bool) -> str:
    lowered = text.lower()
    for level in ("critical", "high", "low"):
        if any(word in lowered for word in _SEVERE[level]):
            if level == "low" and has_error:
                break
            return level
    return "high" if has_error else "medium"


def _with_judgement(report: ParsedReport, text: str) -> ParsedReport:
    basis = " ".join(filter(None, [report.title, report.description or "", text]))
    has_error = bool(report.error_type or report.error_message)
    return ParsedReport(**{
        **report.__dict__,
        "severity": guess_severity(basis, has_error),
        "fingerprint": fingerprint(report.error_type, report.error_message,
                                   report.stack_frames, report.title),
    })


def _parse_text(text: str) -> dict[str, Any]:
    found: dict[str, Any] = {"environment": {}}
    sections: dict[str, list[str]] = {}
    current = "description"
    frames: list[StackFrame] = []
    for line in text.splitlines():
        if not line.strip():
            current = "description"  # a blank line ends a section
            continue
        match = _SECTION.match(line)
        if match:
            current = _section_name(match["name"])
            if match["rest"].strip():
                sections.setdefault(current, []).append(match["rest"].strip())
            continue
        frame = _frame(line)
        if frame:
            frames.append(frame)
            continue
        sections.setdefault(current, []).append(line.rstrip())
    error = _ERROR.search(text)
    if error:
        found["error_type"] = error["type"].split(".")[-1]  # TypeError, not a.b.TypeError
        found["error_message"] = error["message"].strip()[:1000]
    found["frames"] = frames
    if "steps" in sections:
        found["steps"] = [_LIST_ITEM.sub(r"\g<item>", s).strip() for s in sections["steps"]]
    for name in ("expected", "actual"):
        if name in sections:
            found[name] = "\n".join(s.strip() for s in sections[name])
    if "description" in sections:
        found["description"] = "\n".join(sections["description"]).strip() or None
    url = _URL.search("\n".join(sections.get("url", [])) or text)
    if url:
        found["page_url"] = url.group(0).rstrip(".,;")
    found["environment"] = _environment(text)
    return found


def _section_name(name: str) -> str:
    name = name.lower()
    if name.startswith(("steps", "repro")):
        return "steps"
    if name.startswith("expected"):
        return "expected"
    if name.startswith("actual"):
        return "actual"
    if name in ("url", "page"):
        return "url"
    if name == "environment":
        return "environment"
    return "description"


def _frame(line: str) -> StackFrame | None:
    match = _JS_FRAME.match(line) or _PY_FRAME.match(line)
    if not match:
        return None
    fn = (match["fn"] or "").strip() or None
    return StackFrame(function=fn, file=match["file"], line=int(match["line"]))


def _environment(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for browser in _BROWSERS:
        match = re.search(rf"\b{browser}[/ ](\d+(?:\.\d+)*)", text)
        if match:
            env["browser"] = f"{browser} {match[1]}"
            break
    for os_name in _OSES:
        if re.search(rf"\b{re.escape(os_name)}\b", text, re.IGNORECASE):
            env["os"] = os_name
            break
    match = re.search(r"\b(production|staging|development|preview)\b", text, re.IGNORECASE)
    if match:
        env["environment"] = match[1].lower()
    return env


def _flatten_form(form: dict[str, Any]) -> dict[str, Any]:
    """The intake form's fields, under our names (camelCase or snake_case)."""

    def pick(*names: str) -> Any:
        for name in names:
            value = form.get(name)
            if value not in (None, "", []):
                return value
        return None

    raw_error = form.get("error")
    error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    steps = pick("stepsToReproduce", "steps_to_reproduce", "steps")
    if isinstance(steps, str):
        steps = [_LIST_ITEM.sub(r"\g<item>", s).strip() for s in steps.splitlines() if s.strip()]
    stack = error.get("stack") or pick("stack", "stackTrace")
    frames = [f for f in map(_frame, str(stack).splitlines()) if f] if stack else None
    env = {k: str(v) for k, v in {
        "browser": pick("browser"), "os": pick("os"), "environment": pick("environment"),
        "user_agent": pick("userAgent", "user_agent"),
    }.items() if v}
    return {
        "title": _text(pick("title", "summary")),
        "description": _text(pick("description", "details")),
        "steps": [str(s) for s in steps] if isinstance(steps, list) else None,
        "expected": _text(pick("expected", "expectedBehavior", "expected_behavior")),
        "actual": _text(pick("actual", "actualBehavior", "actual_behavior")),
        "error_type": _text(error.get("type") or pick("errorType", "error_type")),
        "error_message": _text(error.get("message") or pick("errorMessage", "error_message")),
        "frames": frames,
        "page_url": _text(pick("pageUrl", "page_url", "url")),
        "environment": env,
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value).strip()[:MAX_TEXT] or None


def _first_line(text: str) -> str | None:
    for line in text.splitlines():
        if line.strip() and not _SECTION.match(line):
            return line.strip()
    return None


def _normalise(message: str) -> str:
    """The message without what changes from one occurrence to the next."""
    message = re.sub(r"0x[0-9a-f]+", "<hex>", message, flags=re.IGNORECASE)
    message = re.sub(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
                     "<uuid>", message, flags=re.IGNORECASE)
    message = re.sub(r"(['\"`]).*?\1", "<value>", message)
    message = re.sub(r"\d+", "<n>", message)
    return re.sub(r"\s+", " ", message).strip().lower()


def _basename(path: str) -> str:
    path = path.split("?")[0]
    return re.split(r"[\\/]", path)[-1]

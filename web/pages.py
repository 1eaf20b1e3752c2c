"""The dashboard's pages and the admin actions behind their buttons.

Pages refresh themselves: each wraps its changing part in ``#live``, which htmx
fetches again every few seconds and swaps in place. Actions are plain forms
(POST, CSRF token): the first post shows a confirmation page, the second does
the work, writes an audit line and redirects back.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from pgbroker import JobNotFound, PostgresBroker, jobs

from . import charts
from .auth import CSRF_FIELD, LoginThrottle, csrf_ok, csrf_token, log_in, role_of_token, shown
from .config import WebConfig
from .data import STATES, Dashboard, JobFilter

logger = logging.getLogger("pts_jobs.web")
audit = logging.getLogger("pts_jobs.audit")

TEMPLATES = Path(__file__).parent / "templates"
RANGES = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1),
          "24h": timedelta(hours=24), "7d": timedelta(days=7)}


@dataclass(frozen=True)
class Action:
    title: str
    # Form fields it needs: job, queue, error.
    needs: tuple[str, ...]
    describe: Callable[[dict[str, str]], str]
    run: Callable[[PostgresBroker, dict[str, str]], str]


def _replayed(count: int) -> str:
    return f"{count} dead job{'s' if count != 1 else ''} sent back to their queue"


def _retry(broker: PostgresBroker, fields: dict[str, str]) -> str:
    jobs.replay(fields["job"], broker=broker)
    return "job sent back to its queue"


def _run_now(broker: PostgresBroker, fields: dict[str, str]) -> str:
    jobs.run_now(fields["job"], broker=broker)
    return "the job is due now"


def _delete(broker: PostgresBroker, fields: dict[str, str]) -> str:
    jobs.delete(fields["job"], broker=broker)
    return "job deleted"


ACTIONS: dict[str, Action] = {
    "retry": Action(
        "Retry dead job", ("job",), lambda f: f"Send dead job {f['job']} back to its queue, "
        "its attempts reset.",
        _retry),
    "retry_queue": Action(
        "Retry every dead job of a queue", ("queue",),
        lambda f: f"Send every dead job of {f['queue']} back to the queue.",
        lambda b, f: _replayed(jobs.replay_dead(f["queue"], broker=b))),
    "retry_error": Action(
        "Retry dead jobs with this error", ("queue", "error"),
        lambda f: f"Send every dead job of {f['queue']} that failed with “{f['error'][:200]}” "
        "back to the queue.",
        lambda b, f: _replayed(jobs.replay_dead(f["queue"], last_error=f["error"], broker=b))),
    "cancel": Action(
        "Cancel job", ("job",), lambda f: f"Cancel job {f['job']}. A running job is stopped "
        "by its worker within one heartbeat; the job is never retried.",
        lambda b, f: f"cancelled (it was {jobs.cancel(f['job'], by='admin', broker=b)})"),
    "run_now": Action(
        "Run delayed job now", ("job",), lambda f: f"Make delayed job {f['job']} due now.",
        _run_now),
    "delete": Action(
        "Delete job", ("job",), lambda f: f"Delete job {f['job']} and its history. This "
        "cannot be undone.",
        _delete),
    "pause": Action(
        "Pause queue", ("queue",), lambda f: f"Pause {f['queue']}: no worker takes its jobs "
        "until it is resumed. Running jobs finish.",
        lambda b, f: "paused" if jobs.pause_queue(f["queue"], by="admin", broker=b)
        else "it was paused already"),
    "resume": Action(
        "Resume queue", ("queue",), lambda f: f"Resume {f['queue']}: workers take its jobs "
        "again.",
        lambda b, f: "resumed" if jobs.resume_queue(f["queue"], broker=b)
        else "it was not paused"),
}


def ago(value: datetime | None) -> str:
    """``3 min ago`` / ``in 2 h`` from now."""
    if value is None:
        return "-"
    seconds = (datetime.now(UTC) - value).total_seconds()
    text = duration(abs(seconds))
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def timestamp(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def diff_lines(patch: str | None) -> Markup:
    """A unified diff with added, removed and hunk lines marked for colour."""
    kinds = {"+": "add", "-": "del", "@": "hunk"}
    lines = []
    for line in (patch or "").splitlines():
        kind = "" if line.startswith(("+++", "---")) else kinds.get(line[:1], "")
        text = escape(line)
        lines.append(f'<span class="d-{kind}">{text}</span>' if kind else str(text))
    return Markup("\n".join(lines))


def _safe_next(value: str | None, default: str) -> str:
    """A same-site path to go back to (never another site)."""
    if not value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return default
    return value


class Pages:
    def __init__(self, broker: PostgresBroker, config: WebConfig, *,
                 job_types: Mapping[str, Any], periodic: Sequence[Any]) -> None:
        self.broker = broker
        self.config = config
        self.job_types = dict(job_types)
        self.periodic = list(periodic)
        self.data = Dashboard(broker, config.pipeline_schema, config.cache_seconds)
        self.throttle = LoginThrottle()
        self.templates = Jinja2Templates(directory=str(TEMPLATES))
        env = self.templates.env
        env.filters.update(ago=ago, duration=duration, ts=timestamp, diff=diff_lines)
        env.globals.update(sparkline=charts.sparkline, state_bar=charts.state_bar,
                           STATES=STATES)

    def routes(self) -> list[Route]:
        return [
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/", self.overview),
            Route("/jobs", self.job_list),
            Route("/jobs/{job_id}", self.job),
            Route("/dead", self.dead),
            Route("/workers", self.workers),
            Route("/schedules", self.schedules),
            Route("/actions/{action}", self.act, methods=["POST"]),
        ]

    # -- rendering ---------------------------------------------------------

    def render(self, request: Request, name: str, context: dict[str, Any],
               status: int = 200) -> Response:
        role = request.scope.get("role")
        # No one sees a secret an error quotes; viewers see no reporter's address.
        context = shown(context, role)
        context.update(
            role=role, csrf=csrf_token(request.session), csrf_field=CSRF_FIELD,
            refresh=self.config.refresh_seconds, path=request.url.path,
            here=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
            flash=request.session.pop("flash", None) if role else None,
        )
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    def max_retries_of(self, actor_name: str) -> int | None:
        actor = self.broker.actors.get(actor_name)
        return actor.options.get("max_retries") if actor is not None else None

    def actors_by_queue(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for actor in self.broker.actors.values():
            found.setdefault(actor.queue_name, []).append(actor.actor_name)
        return found

    # -- login -------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return self.render(request, "login.html", {"error": None})
        form = await request.form()
        if not csrf_ok(request.session, str(form.get(CSRF_FIELD, ""))):
            return self.render(request, "login.html", {"error": "The form expired: try again."},
                               status=403)
        if not self.throttle.allowed(_client(request)):
            return self.render(request, "login.html", {
                "error": "Too many wrong tokens from this address: wait a few minutes."},
                status=429)
        token = str(form.get("token", ""))
        role = role_of_token(self.config, token)
        if role is None:
            self.throttle.failed(_client(request))
            logger.warning("failed dashboard login from %s", _client(request))
            return self.render(request, "login.html", {"error": "That token is not valid."},
                               status=401)
        log_in(request.session, role, token)
        audit.info("login role=%s from=%s", role, _client(request))
        return RedirectResponse("/", status_code=303)

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(request.session, str(form.get(CSRF_FIELD, ""))):
            return PlainTextResponse("CSRF token missing or wrong", status_code=403)
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # -- pages -------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        view = await run_in_threadpool(self.data.overview, self.broker.get_declared_queues(),
                                       self.actors_by_queue())
        return self.render(request, "overview.html", view)

    async def job_list(self, request: Request) -> Response:
        q = request.query_params
        where, chosen = parse_filter(q)
        rows, cursor = await run_in_threadpool(self.data.job_list, where)
        given = {k: v for k, v in chosen.items() if v}
        first_url = "/jobs" + (f"?{urlencode(given)}" if given else "")
        next_url = f"/jobs?{urlencode({**given, 'before': cursor})}" if cursor else None
        queues = sorted(set(self.broker.get_declared_queues()))
        return self.render(request, "jobs.html", {
            "rows": rows, "next_url": next_url, "first_url": first_url, "chosen": chosen,
            "queues": queues,
            "job_types": sorted(self.broker.actors), "ranges": list(RANGES),
            "paged": bool(q.get("before")),
        })

    async def job(self, request: Request) -> Response:
        try:
            job = await run_in_threadpool(self.data.job, request.path_params["job_id"],
                                          self.max_retries_of)
        except JobNotFound:
            return self.render(request, "missing.html", {"what": "job"}, status=404)
        return self.render(request, "job.html", {"job": job})

    async def dead(self, request: Request) -> Response:
        groups = await run_in_threadpool(self.data.dead_groups)
        return self.render(request, "dead.html", {"groups": groups})

    async def workers(self, request: Request) -> Response:
        view = await run_in_threadpool(self.data.workers)
        for job in view["running"]:
            # Slow or stuck: past its time limit (TimeLimit should have stopped
            # it), or its worker stopped renewing the lease.
            actor = self.broker.actors.get(job["actor_name"])
            limit_ms = actor.options.get("time_limit") if actor is not None else None
            job["over_limit"] = bool(limit_ms and job["running_seconds"] > limit_ms / 1000)
            job["limit_seconds"] = limit_ms / 1000 if limit_ms else None
        return self.render(request, "workers.html", view)

    async def schedules(self, request: Request) -> Response:
        rows = await run_in_threadpool(self.data.schedules, self.periodic)
        return self.render(request, "schedules.html", {"schedules": rows})

    # -- actions -----------------------------------------------------------

    async def act(self, request: Request) -> Response:
        if request.scope.get("role") != "admin":
            return PlainTextResponse("only an admin may act", status_code=403)
        action = ACTIONS.get(request.path_params["action"])
        if action is None:
            return PlainTextResponse("no such action", status_code=404)
        form = await request.form()
        if not csrf_ok(request.session, str(form.get(CSRF_FIELD, ""))):
            audit.warning("refused action=%s: bad CSRF token from=%s",
                          request.path_params["action"], _client(request))
            return PlainTextResponse("CSRF token missing or wrong", status_code=403)
        fields = {name: str(form.get(name, "")).strip() for name in action.needs}
        if not all(fields.values()):
            return PlainTextResponse(f"needs {', '.join(action.needs)}", status_code=400)
        back = _safe_next(str(form.get("next", "")), "/")
        if form.get("confirmed") != "yes":
            return self.render(request, "confirm.html", {
                "action": action, "name": request.path_params["action"], "fields": fields,
                "description": action.describe(fields), "next": back})
        try:
            outcome = await run_in_threadpool(action.run, self.broker, fields)
        except JobNotFound as error:
            outcome = f"nothing done: {error}"
        audit.info("action=%s %s by=admin session=%s from=%s: %s",
                   request.path_params["action"],
                   " ".join(f"{k}={v[:120]!r}" for k, v in fields.items()),
                   _session_id(request), _client(request), outcome)
        request.session["flash"] = f"{action.title}: {outcome}"
        return RedirectResponse(back, status_code=303)


def parse_filter(q: Mapping[str, str]) -> tuple[JobFilter, dict[str, str]]:
    """The job list's filter from the query string; unknown values are dropped."""
    chosen = {key: q.get(key, "").strip()[:200] for key in
              ("queue", "state", "job_type", "priority", "range", "from", "to", "error")}
    if chosen["state"] not in STATES:
        chosen["state"] = ""
    if chosen["range"] not in RANGES:
        chosen["range"] = ""
    if not chosen["priority"].lstrip("-").isdigit() or len(chosen["priority"]) > 4:
        chosen["priority"] = ""
    since = datetime.now(UTC) - RANGES[chosen["range"]] if chosen["range"] else None
    # From and to: the form's datetime-local values, read as UTC.
    bounds: dict[str, datetime | None] = {}
    for key in ("from", "to"):
        try:
            bounds[key] = datetime.fromisoformat(chosen[key]).replace(tzinfo=UTC)
        except ValueError:
            chosen[key], bounds[key] = "", None
    if bounds["from"] and (since is None or bounds["from"] > since):
        since = bounds["from"]
    before_at = before_id = None
    if "|" in q.get("before", ""):
        at, _, before_id = q["before"].partition("|")
        try:
            before_at = datetime.fromisoformat(at)
            before_id = str(uuid.UUID(before_id))
        except ValueError:
            before_at = before_id = None
    where = JobFilter(
        queue_name=chosen["queue"] or None, state=chosen["state"] or None,
        actor_name=chosen["job_type"] or None, since=since, until=bounds["to"],
        priority=int(chosen["priority"]) if chosen["priority"] else None,
        error=chosen["error"] or None,
        before_at=before_at, before_id=before_id,
    )
    return where, chosen


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def _session_id(request: Request) -> str:
    # Which session acted, without writing its secrets to the log.
    return hashlib.sha256(str(request.session.get("csrf", "")).encode()).hexdigest()[:8]

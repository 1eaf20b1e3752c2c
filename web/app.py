"""The ASGI app: pages, actions, the producer API, and what guards them.

    create_app(broker, config, job_types=..., periodic=...)

Everything is handed in: the broker to read, the frozen config, the job types
the API may enqueue and the periodic actors the Schedules page lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pgbroker import PostgresBroker

from .api import ProducerApi
from .auth import role_of_session
from .config import WebConfig
from .pages import Pages

STATIC = Path(__file__).parent / "static"
SESSION_COOKIE = "pts_jobs_session"
# No inline script or style anywhere; htmx talks to this origin only.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
# Reachable without a session.
PUBLIC = ("/login", "/static/", "/healthz", "/api/")


class SecurityHeaders:
    """Adds the security headers to every response; pages are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += SECURITY_HEADERS
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class RequireSession:
    """Nothing but the login page (and /api, which takes bearer tokens) without a session."""

    def __init__(self, app: ASGIApp, config: WebConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(PUBLIC):
            await self.app(scope, receive, send)
            return
        role = role_of_session(self.config, scope.get("session", {}))
        if role is None:
            response: Response
            if scope["method"] in ("GET", "HEAD"):
                response = RedirectResponse("/login", status_code=303)
            else:
                response = PlainTextResponse("log in first", status_code=401)
            await response(scope, receive, send)
            return
        scope["role"] = role
        await self.app(scope, receive, send)


def create_app(
    broker: PostgresBroker,
    config: WebConfig,
    *,
    job_types: Mapping[str, Any],
    periodic: Sequence[Any] = (),
) -> Starlette:
    """The dashboard and API over ``broker``."""
    pages = Pages(broker, config, job_types=job_types, periodic=periodic)
    api = ProducerApi(broker, config, job_types)

    async def healthz(request: Any) -> Response:
        return PlainTextResponse("ok\n")

    routes = [
        *api.routes(),
        *pages.routes(),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(SessionMiddleware, secret_key=config.session_secret,
                   session_cookie=SESSION_COOKIE, max_age=config.session_max_age,
                   same_site="strict", https_only=config.secure_cookies),
        Middleware(RequireSession, config=config),
    ]
    return Starlette(routes=routes, middleware=middleware)

"""Who may look and who may act: tokens, sessions, CSRF, masking.

A session is a signed cookie (Starlette's, HttpOnly, SameSite=Strict) holding
the role and a fingerprint of the token that logged in: changing a token in
the settings ends the sessions it opened. Every form that changes something
carries the session's CSRF token, checked before anything is done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pgbroker.redact import redact, scrub

from .config import WebConfig

Role = Literal["admin", "viewer"]
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def fingerprint(token: str) -> str:
    """A digest of ``token`` safe to keep in a cookie (it cannot be turned back)."""
    return hashlib.sha256(b"pts-jobs session\0" + token.encode()).hexdigest()[:32]


def role_of_token(config: WebConfig, given: str | None) -> Role | None:
    """The dashboard role ``given`` logs in as, if any (constant-time compares)."""
    if not given:
        return None
    found: Role | None = None
    for role, token in (("admin", config.admin_token), ("viewer", config.viewer_token)):
        if token and hmac.compare_digest(given.encode(), token.encode()):
            found = role  # type: ignore[assignment]
    return found


def role_of_session(config: WebConfig, session: Mapping[str, Any]) -> Role | None:
    """The role of a session, if its token is still the configured one."""
    role, tok = session.get("role"), session.get("tok")
    if not isinstance(tok, str):
        return None
    token = {"admin": config.admin_token, "viewer": config.viewer_token}.get(str(role))
    if token and hmac.compare_digest(tok, fingerprint(token)):
        return role
    return None


def api_role(config: WebConfig, authorization: str | None) -> Literal["producer", "viewer"] | None:
    """What a bearer token may do on /api: enqueue and read (admin or API token),
    or only read (viewer token)."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    given = authorization.removeprefix("Bearer ").strip().encode()
    found = None
    for role, token in (("producer", config.admin_token), ("producer", config.api_token),
                        ("viewer", config.viewer_token)):
        if token and hmac.compare_digest(given, token.encode()) and found is None:
            found = role
    return found  # type: ignore[return-value]


class LoginThrottle:
    """Refuse logins from a client that failed ``limit`` times in ``window`` s.

    Tokens may be guessed; this bounds a client to ``limit`` guesses per window.
    In memory, per process: enough for one dashboard server.
    """

    def __init__(self, limit: int = 10, window: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] <= self.clock() - self.window:
            failures.popleft()
        return failures

    def allowed(self, client: str) -> bool:
        with self._lock:
            allowed = len(self._recent(client)) < self.limit
            if not self._failures.get(client):
                self._failures.pop(client, None)
            return allowed

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(self.clock())
            if len(self._failures) > 10_000:  # a flood of addresses: forget the oldest
                self._failures.pop(next(iter(self._failures)))


def log_in(session: dict[str, Any], role: Role, token: str) -> None:
    """Start a session: a fresh CSRF token, so one seen before login is useless."""
    session.clear()
    session.update(role=role, tok=fingerprint(token), csrf=secrets.token_urlsafe(24))


def csrf_token(session: dict[str, Any]) -> str:
    """The session's CSRF token, made on first use (the login form needs one too)."""
    if not isinstance(session.get("csrf"), str):
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def csrf_ok(session: Mapping[str, Any], given: str | None) -> bool:
    expected = session.get("csrf")
    return bool(isinstance(expected, str) and given
                and hmac.compare_digest(expected.encode(), given.encode()))


def shown(value: Any, role: str | None) -> Any:
    """``value`` as ``role`` may see it: secrets masked for everyone (an error can
    quote a URL with its password), e-mail addresses too for viewers. Walks
    dicts, lists and dataclasses."""
    clean = scrub if role == "viewer" else redact
    return _walk(value, clean)


def _walk(value: Any, clean: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, Mapping):
        return {key: _walk(item, clean) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_walk(item, clean) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _walk(dataclasses.asdict(value), clean)
    return value

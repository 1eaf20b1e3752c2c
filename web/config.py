"""The dashboard's configuration: one frozen object, built once from settings."""

from __future__ import annotations

import ipaddress
import secrets
import socket
from dataclasses import dataclass

from settings import Settings


class UnsafeBind(RuntimeError):
    """Raised when the dashboard would listen beyond loopback without a token."""


@dataclass(frozen=True)
class WebConfig:
    host: str
    port: int
    admin_token: str | None
    viewer_token: str | None
    api_token: str | None
    session_secret: str
    session_max_age: int
    secure_cookies: bool
    pipeline_schema: str
    # Seconds between the pages' own refreshes.
    refresh_seconds: int = 5
    # The overview's counts of finished jobs and its charts are read at most this
    # often (run times at half that rate): they grow with the jobs kept.
    cache_seconds: float = 15.0

    def __repr__(self) -> str:  # tokens never reach logs
        return f"WebConfig(host={self.host!r}, port={self.port})"

    @classmethod
    def from_settings(cls, config: Settings) -> WebConfig:
        def secret(value) -> str | None:
            return value.get_secret_value() if value is not None else None

        return cls(
            host=config.web_host,
            port=config.web_port,
            admin_token=secret(config.admin_token) or None,
            viewer_token=secret(config.viewer_token) or None,
            api_token=secret(config.api_token) or None,
            session_secret=secret(config.web_session_secret) or secrets.token_urlsafe(32),
            session_max_age=int(config.web_session_max_age.total_seconds()),
            secure_cookies=config.web_secure_cookies,
            pipeline_schema=config.pipeline_schema,
        )

    def check_bind(self) -> None:
        """Refuse a non-loopback address unless a login token is configured.

        Raises:
            UnsafeBind: naming the setting to add.
        """
        if self.admin_token or self.viewer_token:
            return
        if not is_loopback(self.host):
            raise UnsafeBind(
                f"refusing to serve the dashboard on {self.host}: no JOBS_ADMIN_TOKEN or "
                "JOBS_VIEWER_TOKEN is set, so anyone who can reach it could log in. Set a "
                "token, or listen on 127.0.0.1 (JOBS_WEB_HOST)."
            )


def is_loopback(host: str) -> bool:
    """True if every address ``host`` names is a loopback address."""
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)

"""The pipeline's configuration: frozen, built once from ``Settings``, handed down.

Pipeline functions take what they need of it as an argument; tests build their
own with :func:`dataclasses.replace` instead of patching a module global.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import SecretStr

from .git import Git
from .sandbox.config import SandboxConfig

if TYPE_CHECKING:  # the type only: importing settings reads the environment
    from settings import Settings


@dataclass(frozen=True)
class Mail:
    """Where notifications are mailed through, and from whom."""

    # smtp(s)://user:password@host:port; None: rendered and recorded, not mailed.
    smtp_url: SecretStr | None
    sender: str
    # "required": refuse a server without STARTTLS; "optional": mail in clear
    # to one (a local catcher), though never a password. See pipeline/mail.py.
    tls: Literal["required", "optional"] = "required"
    # CA bundle that verifies the server's certificate; None: the system's CAs.
    ca_file: Path | None = None


@dataclass(frozen=True)
class ReadLimits:
    """How much of a repository the worker reads (bytes)."""

    max_file_bytes: int = 1024 * 1024
    max_read_bytes: int = 256 * 1024 * 1024
    max_repository_bytes: int = 2 * 1024 * 1024 * 1024


@dataclass(frozen=True)
class PipelineConfig:
    # Repository clones (``repos/``) and fix sandboxes (``sandboxes/``).
    workspace_dir: Path
    # The longest one git command may run, in seconds.
    git_timeout: float
    # Protocols a repository link may use ("https", "ssh", "file").
    git_protocols: frozenset[str]
    read_limits: ReadLimits
    # The command execute-fix runs in the sandbox; None fails the fix ("no fixer").
    fixer_command: str | None
    # Seconds between a running fix job's heartbeats.
    heartbeat_interval: float
    mail: Mail
    # Where and how the fixer runs (untrusted code).
    sandbox: SandboxConfig

    @classmethod
    def from_settings(cls, settings: Settings) -> PipelineConfig:
        return cls(
            workspace_dir=settings.workspace_dir,
            git_timeout=settings.git_timeout.total_seconds(),
            git_protocols=frozenset(settings.git_protocols),
            read_limits=ReadLimits(
                max_file_bytes=settings.analysis_max_file_bytes,
                max_read_bytes=settings.analysis_max_read_bytes,
                max_repository_bytes=settings.repository_max_bytes,
            ),
            fixer_command=settings.fixer_command,
            heartbeat_interval=settings.heartbeat_interval.total_seconds(),
            mail=Mail(smtp_url=settings.smtp_url, sender=settings.mail_from,
                      tls=settings.smtp_tls, ca_file=settings.smtp_ca_file),
            sandbox=SandboxConfig.from_settings(settings),
        )

    @property
    def git(self) -> Git:
        """The worker's hardened git, per this configuration."""
        return Git(self.git_timeout, self.git_protocols)

    @property
    def repos_dir(self) -> Path:
        return self.workspace_dir / "repos"

    @property
    def sandboxes_dir(self) -> Path:
        return (self.workspace_dir / "sandboxes").resolve()

"""The sandbox's configuration: frozen, built once from Settings and passed down.

Nothing in ``pipeline.sandbox`` reads the settings module or the environment;
tests build a :class:`SandboxConfig` of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class Limits:
    """What one fixer may use. Bytes, CPUs, processes."""

    memory: int = 2 * 2**30
    cpus: float = 1.0
    pids: int = 256
    tmpfs: int = 256 * 2**20
    file_size: int = 2**30


@dataclass(frozen=True)
class SandboxConfig:
    workspace_dir: Path
    runtime: Literal["auto", "docker", "process"] = "auto"
    image: str = "pts-fixer:latest"
    network: str | None = None
    docker_url: str | None = None
    # Extra variables given to the fixer (name -> value), already allow-listed.
    extra_env: tuple[tuple[str, str], ...] = ()
    uid: int = 10001
    allow_unconfined: bool = False
    process_uid_base: int = 200_000
    output_limit: int = 200_000
    report_limit: int = 64_000
    finish_margin: float = 60.0
    sweep_after: float = 1800.0
    git_timeout: float = 300.0
    limits: Limits = field(default_factory=Limits)

    @property
    def sandboxes_dir(self) -> Path:
        return self.workspace_dir / "sandboxes"

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> SandboxConfig:
        """Build from a ``settings.Settings`` (passed in, never imported here)."""
        sandbox = settings.sandbox
        policy_limits = settings.policies.execute_fix.sandbox
        values: dict[str, Any] = dict(
            workspace_dir=Path(settings.workspace_dir).resolve(),
            runtime=sandbox.runtime,
            image=sandbox.image,
            network=sandbox.network,
            docker_url=sandbox.docker_url,
            extra_env=tuple(sorted(sandbox.allowed_environment().items())),
            uid=sandbox.uid,
            allow_unconfined=sandbox.allow_unconfined,
            process_uid_base=sandbox.process_uid_base,
            output_limit=sandbox.output_limit,
            report_limit=sandbox.report_limit,
            finish_margin=sandbox.finish_margin.total_seconds(),
            sweep_after=sandbox.sweep_after.total_seconds(),
            git_timeout=settings.git_timeout.total_seconds(),
            limits=Limits(**policy_limits.model_dump()) if policy_limits else Limits(),
        )
        values.update(overrides)
        return cls(**values)

    def __repr__(self) -> str:
        # Allow-listed values may be API keys: show their names only.
        names = [name for name, _ in self.extra_env]
        return (f"SandboxConfig(runtime={self.runtime!r}, image={self.image!r}, "
                f"network={self.network!r}, extra_env={names}, limits={self.limits})")

"""Every setting of the job system, typed, in one place.

Values come from the environment (prefix ``JOBS_``, nested fields joined by
``__``) and from an optional ``.env`` file. ``DATABASE_URL`` is read without the
prefix, as the spec and most platforms name it.

The policy of each job type (retries, backoff, time limit, priority,
concurrency) stands in the :class:`Policies` table below. Any single field can be
overridden from the environment without restating the others, for example::

    JOBS_POLICIES__EXECUTE_FIX__TIME_LIMIT=3600          # seconds
    JOBS_POLICIES__SEND_NOTIFICATION__MAX_RETRIES=5

Modules read ``settings`` from here and never ``os.environ``.
"""

from __future__ import annotations

import enum
import re
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

import psycopg2.extensions
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "JOBS_"
ENV_NESTED_DELIMITER = "__"
# Schemas stand in SQL as identifiers and inside dollar-quoted bodies: plain names only.
SchemaName = Annotated[str, Field(min_length=1, max_length=30, pattern=r"^[a-z_][a-z0-9_]*$")]


def _seconds_from_env(value: Any) -> Any:
    # The environment holds strings: accept "30" or "0.5" as seconds, as well as
    # pydantic's "HH:MM:SS" and ISO 8601 ("PT45M") forms.
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        return float(value)
    return value


PositiveSeconds = Annotated[timedelta, BeforeValidator(_seconds_from_env), Field(gt=timedelta(0))]


def _comma_separated(value: Any) -> Any:
    # "https,ssh" from the environment; lists and sets pass through.
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


GitProtocols = Annotated[
    frozenset[Literal["https", "ssh", "file"]], NoDecode, BeforeValidator(_comma_separated)
]
Bytes = Annotated[int, Field(ge=1024)]


class Priority(enum.IntEnum):
    """Dramatiq priorities: a lower number runs first (the reverse of pg-boss)."""

    HIGH = -10
    NORMAL = 0
    LOW = 10


class SandboxLimits(BaseModel):
    """What one fixer may use: enforced by the container (cgroups) or by rlimits.

    ``memory`` and ``tmpfs`` are bytes (the tmpfs counts against ``memory``),
    ``cpus`` a share of CPUs (1.5 = one and a half), ``pids`` the most
    processes and threads at once.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    memory: Annotated[int, Field(ge=32 * 2**20)] = 2 * 2**30
    cpus: Annotated[float, Field(gt=0, le=64)] = 1.0
    pids: Annotated[int, Field(ge=8, le=100_000)] = 256
    tmpfs: Annotated[int, Field(ge=2**20)] = 256 * 2**20
    # Largest file it may write (RLIMIT_FSIZE): a fixer cannot fill the disk with one file.
    file_size: Annotated[int, Field(ge=2**20)] = 2**30


class JobPolicy(BaseModel):
    """How one job type is retried, limited and scheduled.

    ``max_retries`` counts retries, so a job runs at most ``max_retries + 1``
    times. With ``backoff="exponential"`` the n-th retry waits about
    ``first_retry_after * 2**(n-1)``; with ``"fixed"`` every retry waits about
    ``first_retry_after``. Dramatiq jitters each wait to 50-100% of that value.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    max_retries: Annotated[int, Field(ge=0, le=100)]
    first_retry_after: PositiveSeconds
    backoff: Literal["exponential", "fixed"]
    # Ceiling for exponential waits; pg-boss and Oban cap theirs too.
    max_retry_after: PositiveSeconds = timedelta(hours=1)
    time_limit: PositiveSeconds
    priority: Priority = Priority.NORMAL
    # How many jobs of this type one worker process runs at once (teamConcurrency).
    concurrency: Annotated[int, Field(ge=1, le=1000)]
    # Limits of the sandbox this job type runs untrusted code in (execute_fix).
    sandbox: SandboxLimits | None = None

    @property
    def min_backoff_ms(self) -> int:
        return _ms(self.first_retry_after)

    @property
    def max_backoff_ms(self) -> int:
        if self.backoff == "fixed":
            return self.min_backoff_ms
        return max(_ms(self.max_retry_after), self.min_backoff_ms)

    @property
    def time_limit_ms(self) -> int:
        return _ms(self.time_limit)


def _ms(value: timedelta) -> int:
    return int(value.total_seconds() * 1000)


# The spec's policies (phase-0-job-queue.md, "Job Types"), one row per job type.
DEFAULT_POLICIES: dict[str, dict[str, Any]] = {
    "process_bug_report": dict(
        queue="process-bug-report", max_retries=3, first_retry_after=timedelta(seconds=30),
        backoff="exponential", time_limit=timedelta(minutes=10), concurrency=5,
    ),
    "analyze_codebase": dict(
        queue="analyze-codebase", max_retries=2, first_retry_after=timedelta(seconds=60),
        backoff="exponential", time_limit=timedelta(minutes=30), concurrency=2,
    ),
    "execute_fix": dict(
        queue="execute-fix", max_retries=3, first_retry_after=timedelta(seconds=60),
        backoff="exponential", time_limit=timedelta(minutes=45), priority=Priority.HIGH,
        concurrency=1, sandbox=SandboxLimits(),
    ),
    "cleanup_container": dict(
        queue="cleanup-container", max_retries=5, first_retry_after=timedelta(seconds=10),
        backoff="fixed", time_limit=timedelta(minutes=5), concurrency=5,
    ),
    "send_notification": dict(
        queue="send-notification", max_retries=3, first_retry_after=timedelta(seconds=30),
        backoff="fixed", time_limit=timedelta(minutes=60), concurrency=10,
    ),
    # Not in the spec: the scheduler's sweeper of what fix jobs left. On the
    # cleanup queue: it needs what cleanup needs (the engine, the workspace).
    "sweep_sandboxes": dict(
        queue="cleanup-container", max_retries=1, first_retry_after=timedelta(seconds=60),
        backoff="fixed", time_limit=timedelta(minutes=10), concurrency=1,
    ),
    # Not in the spec: the scheduler's retention job (pg-boss's maintenance).
    "prune_jobs": dict(
        queue="maintenance", max_retries=3, first_retry_after=timedelta(seconds=60),
        backoff="fixed", time_limit=timedelta(minutes=10), concurrency=1,
    ),
}


class Policies(BaseModel):
    """The policy table, one field per job type (named as its actor)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    process_bug_report: JobPolicy
    analyze_codebase: JobPolicy
    execute_fix: JobPolicy
    cleanup_container: JobPolicy
    send_notification: JobPolicy
    prune_jobs: JobPolicy
    sweep_sandboxes: JobPolicy

    @model_validator(mode="before")
    @classmethod
    def _overlay_on_defaults(cls, data: Any) -> Any:
        # The environment may set one field of one policy; merge it over the
        # spec's row instead of requiring every field to be restated.
        if not isinstance(data, dict):
            return data
        merged: dict[str, Any] = {}
        for name, defaults in DEFAULT_POLICIES.items():
            override = data.get(name, {})
            if isinstance(override, JobPolicy):
                override = override.model_dump()
            if not isinstance(override, dict):
                merged[name] = override
                continue
            merged[name] = {**defaults, **{k.lower(): v for k, v in override.items()}}
        merged.update({k: v for k, v in data.items() if k not in DEFAULT_POLICIES})
        return merged

    def by_actor(self) -> dict[str, JobPolicy]:
        return {name: getattr(self, name) for name in DEFAULT_POLICIES}


# The worker's own secrets and settings: never passed to a fixer, even when allow-listed.
_NEVER_TO_FIXER = re.compile(r"^(DATABASE_URL|JOBS_.*|PG[A-Z]*|DOCKER_.*|PROMETHEUS_.*)$")


class SandboxSettings(BaseModel):
    """Where and how execute-fix runs the fixer (untrusted code): ``JOBS_SANDBOX__*``.

    ``runtime``: ``docker`` (a locked-down container per attempt: the only
    runtime for untrusted fixers), ``process`` (a restricted subprocess, for
    the embedded demo and machines without Docker), or ``auto`` (docker when
    the engine answers, else process, with a warning).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    runtime: Literal["auto", "docker", "process"] = "auto"
    # The fixer's image; build it with Dockerfile.fixer.
    image: str = "pts-fixer:latest"
    # None: no network at all. A Docker network's name (say, one whose only way
    # out is an egress proxy) when the fixer must reach a git host or a model API.
    network: str | None = None
    # Docker Engine address; None: DOCKER_HOST or the local socket.
    docker_url: str | None = None
    # Names of environment variables passed to the fixer besides its contract
    # (FIX_JOB_ID, BUG_REPORT_JSON, SANDBOX, FIX_REPORT), e.g. a model API key.
    env_allow: tuple[str, ...] = ()
    # The fixer's user in the container (non-root).
    uid: Annotated[int, Field(ge=1, le=2**31 - 1)] = 10001
    # Process runtime where it cannot confine a fixer (not root, no user
    # namespaces): run it anyway, as the worker's own user. Only for a fixer one
    # trusts as much as the worker (the demo's stand-in); otherwise refused.
    allow_unconfined: bool = False
    # Process runtime, as root: each fix job runs as its own uid, from this base.
    process_uid_base: Annotated[int, Field(ge=1000, le=2**31 - 2**17)] = 200_000
    # Bytes of fixer output kept (the last ones), and the largest report read.
    output_limit: Annotated[int, Field(ge=1024)] = 200_000
    report_limit: Annotated[int, Field(ge=256)] = 64_000
    # The fixer gets the job's time limit minus this, so the worker has time to
    # stop it, take the patch and record the outcome before the job's own limit.
    finish_margin: PositiveSeconds = timedelta(seconds=60)
    # The sweeper removes containers and sandboxes of finished (or abandoned)
    # fix jobs once they are older than this.
    sweep_after: PositiveSeconds = timedelta(minutes=30)

    @field_validator("env_allow")
    @classmethod
    def _no_worker_secrets(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        refused = [n for n in names if _NEVER_TO_FIXER.match(n)]
        if refused:
            raise ValueError(f"the worker's own variables are never given to a fixer: {refused}")
        if any(not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in names):
            raise ValueError("env_allow holds names of environment variables")
        return names

    def allowed_environment(self) -> dict[str, str]:
        """The allow-listed variables that are set, with their values (read now)."""
        import os

        return {name: os.environ[name] for name in self.env_allow if name in os.environ}


class Settings(BaseSettings):
    """The job system's configuration, read once at start."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        env_file=".env",
        extra="ignore",
        frozen=True,
    )

    # None means: start (or join) the embedded PostgreSQL in ``embedded_data_dir``.
    # A secret: it carries the password in whatever form it is written
    # (postgresql://u:pw@h, ?password=pw, or libpq's "password=pw host=h").
    database_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "JOBS_DATABASE_URL")
    )
    embedded_data_dir: Path = Path(".pgdata")
    # PostgreSQL schema holding dramatiq-pg's queue table and ours.
    schema_name: SchemaName = "dramatiq"

    # Producers: the longest send() may wait for the database before it raises.
    enqueue_timeout: PositiveSeconds = timedelta(seconds=5)
    # Connections one process may open (producers, consumers, acks share them).
    pool_size: Annotated[int, Field(ge=2, le=200)] = 20

    # Liveness: a running job's lease is renewed every ``heartbeat_interval``;
    # a job whose lease is older than ``lease_timeout`` belonged to a dead
    # worker and is run again.
    heartbeat_interval: PositiveSeconds = timedelta(seconds=5)
    lease_timeout: PositiveSeconds = timedelta(seconds=20)
    # How often each worker looks for jobs of workers that are gone: a worker
    # whose database session vanished (SIGKILL, OOM) has its jobs started again
    # within about this long; a silent one's wait for their lease.
    rescue_interval: PositiveSeconds = timedelta(seconds=1)
    # A job whose worker died this many times is dead-lettered, not rescued again.
    max_rescues: Annotated[int, Field(ge=0)] = 3
    # Consumers look for due jobs at least this often even without a NOTIFY.
    poll_interval: PositiveSeconds = timedelta(seconds=1)

    # Retention (archiveCompletedAfterSeconds / deleteAfterDays in pg-boss terms).
    keep_done_for: PositiveSeconds = timedelta(days=7)
    keep_dead_for: PositiveSeconds = timedelta(days=30)

    # /metrics and the admin API (admin_server.py). 0.0.0.0 in containers.
    metrics_host: str = "127.0.0.1"
    metrics_port: Annotated[int, Field(ge=1, le=65535)] = 9191
    # Worker processes' metric files, one directory per dramatiq run.
    metrics_dir: Path = Path(tempfile.gettempdir()) / "pts-jobs-metrics"
    # Queue depth is read from PostgreSQL at most this often, however many scrapes.
    queue_stats_ttl: PositiveSeconds = timedelta(seconds=5)
    # Bearer token of GET /api/admin/job-queue; unset turns the endpoint off.
    # The dashboard's login takes it too, with the right to act.
    admin_token: SecretStr | None = None

    # The dashboard and producer API (``pts-jobs web``). 0.0.0.0 in containers;
    # it refuses to listen beyond loopback unless a token is set.
    web_host: str = "127.0.0.1"
    web_port: Annotated[int, Field(ge=1, le=65535)] = 8090
    # Logs in to the dashboard to look, never to act.
    viewer_token: SecretStr | None = None
    # Bearer token of producers (the portal) on POST /api/jobs/{job_type}.
    api_token: SecretStr | None = None
    # Signs session cookies. Unset: a random key per process, so sessions end
    # when the server restarts; set it when several replicas serve one site.
    web_session_secret: SecretStr | None = None
    web_session_max_age: PositiveSeconds = timedelta(hours=12)
    # Send the session cookie over HTTPS only (set behind a TLS proxy).
    web_secure_cookies: bool = False

    # Slack-compatible webhook told about dead jobs; unset means no alerts.
    # A secret: a Slack webhook's path is its credential.
    alert_webhook_url: SecretStr | None = None

    # The pipeline (actors and pipeline/): its tables' schema, its workspace of
    # repository clones and fix sandboxes, and the fixer it runs.
    pipeline_schema: SchemaName = "pipeline"
    workspace_dir: Path = Path(".workspace")
    git_timeout: PositiveSeconds = timedelta(minutes=5)
    # Protocols a repository link may use, comma-separated. "file" (local paths
    # and file:// URLs) lets a link read any repository on the worker's disk:
    # for tests and local mirrors only.
    git_protocols: GitProtocols = frozenset({"https"})
    # What one analysis reads at most: per file, in all; and the largest
    # repository (packed objects) the cache keeps.
    analysis_max_file_bytes: Bytes = 1024 * 1024
    analysis_max_read_bytes: Bytes = 256 * 1024 * 1024
    repository_max_bytes: Bytes = 2 * 1024 * 1024 * 1024
    # The command execute-fix runs inside the sandbox (the later phases' agent).
    # Unset: the fix fails with "no fixer configured".
    fixer_command: str | None = None
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    # Notifications: smtp://user:password@host:port (smtps:// for TLS). Unset:
    # notifications are rendered and recorded, not mailed.
    smtp_url: SecretStr | None = None
    # "required": refuse a server that offers no STARTTLS; "optional": mail in
    # clear to such a server (a local catcher), though never a password.
    smtp_tls: Literal["required", "optional"] = "required"
    # CA bundle that verifies the SMTP server; unset: the system's CAs.
    smtp_ca_file: Path | None = None
    mail_from: str = "Place to Stand <no-reply@placetostand.example>"

    # Log jobs' arguments (bug reports, recipients) in worker log lines. Off:
    # a job is logged as actor(message_id).
    log_message_args: bool = False

    policies: Policies = Field(default_factory=lambda: Policies.model_validate({}))

    def secret_values(self) -> list[str]:
        """Every secret configured here, to be masked wherever it might be printed.

        Tokens and the webhook URL are secret whole; of the database and SMTP
        URLs only the password is, so a log can still say which host it means.
        """
        whole = [self.admin_token, self.alert_webhook_url]
        with_password = [self.database_url, self.smtp_url]
        return [s.get_secret_value() for s in whole if s is not None] + [
            password for s in with_password if s is not None
            if (password := _password_in(s.get_secret_value()))
        ]

    @field_validator("workspace_dir", "metrics_dir", "embedded_data_dir")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        # Relative to where the process started, once: git and subprocesses
        # run in other directories.
        return path.expanduser().resolve()

    @model_validator(mode="after")
    def _lease_outlives_heartbeats(self) -> Settings:
        if self.lease_timeout < 2 * self.heartbeat_interval:
            raise ValueError(
                "lease_timeout must be at least twice heartbeat_interval, "
                "or live jobs would be rescued between two heartbeats"
            )
        return self


def _password_in(url: str) -> str:
    # libpq reads URIs, ?password= and key/value strings alike; a URL it cannot
    # parse (smtp://, a typo'd scheme) still has a netloc to read.
    try:
        return psycopg2.extensions.parse_dsn(url).get("password", "")
    except psycopg2.ProgrammingError:
        pass
    try:
        return unquote(urlsplit(url).password or "")
    except ValueError:
        return ""


class SettingsError(RuntimeError):
    """Raised when the environment holds a setting that does not validate."""


def env_name(location: tuple[str | int, ...]) -> str:
    """The environment variable that sets the field at ``location``."""
    if not location:
        return "settings"  # a rule between fields; the message names them
    if location[0] == "database_url":
        return "DATABASE_URL"
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(part).upper() for part in location)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment.

    Raises:
        SettingsError: naming each environment variable whose value is invalid.
    """
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = [
            f"{env_name(tuple(e['loc']))}: {e['msg']}" for e in error.errors(include_url=False)
        ]
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems)) from None


settings = load_settings()

"""The container runtime: one locked-down, killable container per fix attempt.

The container runs the fixer as a non-root user, on a read-only root
filesystem with a tmpfs ``/tmp``, ``no-new-privileges``, every capability
dropped, no network (unless the configuration names one), and cgroup limits
on memory (no swap), CPU and processes. The only host path it sees is its own
``work/`` directory (at ``/sandbox``): never the repository cache, the
workspace, the Docker socket or the worker's environment.

It is labelled with the fix job's id and attempt: a new attempt, the
cleanup job and the sweeper find it by label and remove it. Removing a
container kills every process in it: nothing the fixer started outlives it.
Should the worker die, the fixer's own ``timeout`` (PID 2, under docker-init)
still ends it a little after its deadline.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from functools import cached_property
from pathlib import Path
from typing import Any

from .config import SandboxConfig
from .engine_paths import EnginePaths
from .layout import CONTAINER_ROOT
from .report import CappedOutput, read_report
from .runtime import FixerResult, FixerRun, SandboxError

logger = logging.getLogger(__name__)

LABEL_ROLE = "pts-jobs.role"
LABEL_JOB = "pts-jobs.fix-job-id"
LABEL_ATTEMPT = "pts-jobs.attempt"
LABEL_WORKER = "pts-jobs.worker"
# Which deployment's container it is: two deployments may share an engine, and
# each sweeps and cleans only its own. Their sandboxes directories differ.
LABEL_SANDBOXES = "pts-jobs.sandboxes"
ROLE = "fixer"
_SLICE = 0.01  # also how often the pids cgroup is sampled (it goes with the container)
# The in-container timeout fires this long after the worker's own deadline.
_SELF_STOP_GRACE = 30


def docker_client(config: SandboxConfig) -> Any:
    """A client of the Docker engine that answered a ping.

    Raises:
        SandboxError: no engine answers (or the SDK is missing).
    """
    try:
        import docker
    except ImportError as missing:  # pragma: no cover - a dependency of the project
        raise SandboxError("the docker package is not installed") from missing
    socket_path = _unix_socket(config.docker_url or os.environ.get("DOCKER_HOST")
                               or "unix:///var/run/docker.sock")
    if socket_path is not None and not _accepts_connections(socket_path):
        # Asked to connect there, the SDK (7.2) leaves its socket unclosed, and a
        # laptop without Docker would see the warning fail its test run.
        raise SandboxError(f"no Docker engine answers at {socket_path}")
    try:
        client = (docker.DockerClient(base_url=config.docker_url, timeout=30)
                  if config.docker_url else docker.from_env(timeout=30))
        client.ping()
    except Exception as error:  # DockerException, requests' connection errors
        raise SandboxError(f"no Docker engine answers: {type(error).__name__}") from None
    return client


def _unix_socket(base_url: str) -> str | None:
    """The socket path of a ``unix://`` engine address, else None."""
    for scheme in ("unix://", "http+unix://"):
        if base_url.startswith(scheme):
            return base_url.removeprefix(scheme)
    return None


def _accepts_connections(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


class DockerRuntime:
    name = "docker"
    isolates = True

    def __init__(self, config: SandboxConfig, client: Any) -> None:
        self.config, self.client = config, client

    def confinement(self) -> str:
        return "a locked-down container per attempt"

    @cached_property
    def _engine_paths(self) -> EnginePaths:
        return EnginePaths.of_client(self.client)

    def run(self, run: FixerRun) -> FixerResult:
        from docker.errors import APIError, ImageNotFound

        removed = self.cleanup(run.fix_job_id)  # what an earlier attempt left
        if removed:
            logger.warning("fix job %s: removed %s left by an earlier attempt",
                           run.fix_job_id, ", ".join(removed))
        run.layout.hand_to(self.config.uid, self.config.uid)
        started = time.monotonic()
        output = CappedOutput(run.layout.output, self.config.output_limit)
        container = stream = None
        try:
            try:
                container = self.client.containers.create(**self._spec(run))
            except ImageNotFound:
                raise SandboxError(
                    f"fixer image {self.config.image} not found: build it with "
                    f"docker build -t {self.config.image} - < Dockerfile.fixer") from None
            except APIError as error:
                raise SandboxError(f"cannot create the fixer's container: {error}") from None
            # Attached before it starts, so no output is missed.
            stream = container.attach(stdout=True, stderr=True, stream=True, logs=False)
            reader = threading.Thread(target=_copy, args=(stream, output), daemon=True,
                                      name=f"fixer-output-{run.fix_job_id[:8]}")
            reader.start()
            container.start()
            refused = [0]
            timed_out = self._wait(container, reader, run, refused)
            if timed_out:
                self._kill(container)
            state = self._final_state(container)
            limit_hit = self._limit_hit(state, max(refused[0], _pids_at_limit(container.id)))
            reader.join(timeout=5)
            return FixerResult(
                exit_code=state.get("ExitCode"), output=output.text(), output_cut=output.cut,
                report=read_report(run.layout.report, self.config.report_limit),
                timed_out=timed_out, limit_hit=limit_hit,
                seconds=time.monotonic() - started)
        finally:
            # Any exception lands here too (TimeLimitExceeded, the broker's
            # lost-lease stop): the container and all it started go with it.
            if container is not None:
                self._remove(container)
            if stream is not None:
                _close(stream)
            output.close()

    def _spec(self, run: FixerRun) -> dict[str, Any]:
        from docker.types import LogConfig, Mount, Ulimit

        config, limits = self.config, self.config.limits
        root = str(CONTAINER_ROOT)
        user = (f"{config.uid}:{config.uid}" if os.geteuid() == 0
                else f"{os.geteuid()}:{os.getegid()}")  # never root, either way
        seconds = max(int(run.seconds_left()) + _SELF_STOP_GRACE, 1)
        network: dict[str, Any] = (
            {"network": config.network} if config.network else {"network_mode": "none"})
        return dict(
            image=config.image,
            command=["timeout", "-s", "KILL", str(seconds), *run.command],
            name=f"pts-fix-{run.fix_job_id}-{run.attempt}",
            labels={LABEL_ROLE: ROLE, LABEL_JOB: run.fix_job_id,
                    LABEL_ATTEMPT: str(run.attempt),
                    LABEL_SANDBOXES: str(config.sandboxes_dir),
                    LABEL_WORKER: f"{socket.gethostname()}:{os.getpid()}"},
            environment=run.environment(config, root, f"{root}/checkout"),
            user=user,
            working_dir=f"{root}/checkout",
            mounts=[Mount(target=root, source=self._engine_paths.source(run.layout.work),
                          type="bind")],
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={limits.tmpfs}"},
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
            mem_limit=limits.memory,
            memswap_limit=limits.memory,  # no swap on top
            nano_cpus=int(limits.cpus * 1e9),
            pids_limit=limits.pids,
            ulimits=[Ulimit(name="fsize", soft=limits.file_size, hard=limits.file_size),
                     Ulimit(name="core", soft=0, hard=0),
                     Ulimit(name="nofile", soft=4096, hard=4096)],
            init=True,  # reaps orphans, so zombies do not eat the pids limit
            ipc_mode="private",
            hostname="sandbox",
            log_config=LogConfig(type="none"),  # its output goes to our capped file only
            stdin_open=False, tty=False,
            **network,
        )

    def _wait(self, container: Any, reader: threading.Thread, run: FixerRun,
              refused: list[int]) -> bool:
        """Wait for the container to exit; True if the deadline came first.

        Samples the forks its pids cgroup refused while it runs: the engine
        removes the cgroup, and the count, as soon as it exits.
        """
        while True:
            reader.join(timeout=_SLICE)
            refused[0] = max(refused[0], _pids_at_limit(container.id))
            # Output ended: usually the exit, unless the fixer closed its streams.
            if not reader.is_alive() and not self.client.api.inspect_container(
                    container.id)["State"]["Running"]:
                return False
            if time.monotonic() >= run.deadline:
                return True

    def _final_state(self, container: Any) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        while True:
            state = self.client.api.inspect_container(container.id)["State"]
            if not state["Running"] or time.monotonic() > deadline:
                return state
            time.sleep(0.1)

    def _limit_hit(self, state: dict[str, Any], refused: int) -> str | None:
        limits = self.config.limits
        if state.get("OOMKilled"):
            return f"fixer hit its memory limit ({limits.memory // 2**20} MiB) and was killed"
        if refused:
            return f"fixer hit its process limit ({limits.pids}): forks were refused"
        return None

    def _kill(self, container: Any) -> None:
        from docker.errors import APIError

        with contextlib.suppress(APIError):  # it exited meanwhile
            container.kill()

    def _remove(self, container: Any) -> None:
        from docker.errors import NotFound

        try:
            container.remove(force=True)  # SIGKILL to every process, then gone
        except NotFound:
            pass
        except Exception:
            # The sweeper and the next attempt find it by label.
            logger.exception("could not remove container %s", container.id[:12])

    @property
    def _ours(self) -> str:
        return f"{LABEL_SANDBOXES}={self.config.sandboxes_dir}"

    def cleanup(self, fix_job_id: str) -> list[str]:
        from docker.errors import NotFound

        removed = []
        for found in self.client.api.containers(
                all=True, filters={"label": [f"{LABEL_JOB}={fix_job_id}", self._ours]}):
            try:
                self.client.api.remove_container(found["Id"], force=True)
            except NotFound:
                continue
            removed.append(found["Names"][0].lstrip("/") if found.get("Names") else found["Id"])
        return removed

    def leftovers(self) -> dict[str, float]:
        found: dict[str, float] = {}
        for item in self.client.api.containers(
                all=True, filters={"label": [f"{LABEL_ROLE}={ROLE}", self._ours]}):
            job_id = (item.get("Labels") or {}).get(LABEL_JOB)
            if job_id:
                found[job_id] = min(found.get(job_id, float(item["Created"])),
                                    float(item["Created"]))
        return found


def _close(stream: Any) -> None:
    """Close the attach connection for good.

    docker-py's ``CancellableStream.close()`` closes the socket object while the
    HTTP response's file still holds it, so the descriptor stays open until
    garbage collection (docker/docker-py#3282, #3345). Close the response, then
    the socket.
    """
    try:
        response = stream._response.raw._fp  # http.client.HTTPResponse
        sock = response.fp.raw._sock
    except AttributeError:  # pragma: no cover - another transport (ssh, npipe)
        with contextlib.suppress(Exception):
            stream.close()
        return
    with contextlib.suppress(OSError, ValueError):
        response.close()
    with contextlib.suppress(OSError):
        sock.close()


def _copy(stream: Any, output: CappedOutput) -> None:
    try:
        for chunk in stream:
            output.write(chunk)
    except Exception:  # the container was removed under the stream: output ends
        logger.debug("fixer output stream ended", exc_info=True)


def _pids_at_limit(container_id: str) -> int:
    """Forks refused, or 1 if the container reached its pids limit (0 if not, or unknown).

    Read from its pids cgroup when the worker shares the engine's host. Some
    kernels leave cgroup v1's ``max`` event at 0 in the leaf, so a peak at
    the limit counts too.
    """
    candidates = (
        Path("/sys/fs/cgroup/pids/docker") / container_id,  # v1, cgroupfs driver
        Path("/sys/fs/cgroup/pids/system.slice") / f"docker-{container_id}.scope",
        Path("/sys/fs/cgroup/system.slice") / f"docker-{container_id}.scope",  # v2
        Path("/sys/fs/cgroup/docker") / container_id,
    )
    for path in candidates:
        try:
            events = dict(line.split() for line in
                          (path / "pids.events").read_text().splitlines() if line.strip())
            refused = int(events.get("max", 0))
            limit = (path / "pids.max").read_text().strip()
            peak = int((path / "pids.peak").read_text()) if (path / "pids.peak").exists() else 0
        except (OSError, ValueError):
            continue
        if refused:
            return refused
        return 1 if limit.isdigit() and peak >= int(limit) else 0
    return 0

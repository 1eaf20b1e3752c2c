"""This process's paths as the Docker engine sees them, for bind mounts.

A bind mount's source is a path on the engine's host. A worker on that host
passes its own paths as they are. A worker that itself runs in a container of
the same engine (Compose's ``worker-fix``, talking to the host's socket) has
its workspace on a volume or bind mount of its own container: the engine
knows that directory under another path (``/var/lib/docker/volumes/...``), so
each path is translated through the worker container's mounts. A path that is
on none of them lives in the container's own layer, which the engine cannot
mount elsewhere.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from .runtime import SandboxError

# Docker bind-mounts /etc/hostname, /etc/hosts and /etc/resolv.conf of every
# container from the engine's directory of that container, named by its id:
# true under cgroup v1 and v2 alike, whatever the container's hostname is.
_CONTAINER_FILE = re.compile(r"/containers/([0-9a-f]{64})/(?:hostname|hosts|resolv\.conf)\s")


def own_container_id(mountinfo: str) -> str | None:
    """The id of the Docker container whose ``/proc/self/mountinfo`` this is, if any."""
    match = _CONTAINER_FILE.search(mountinfo)
    return match.group(1) if match else None


def read_own_container_id() -> str | None:
    try:
        return own_container_id(Path("/proc/self/mountinfo").read_text())
    except OSError:
        return None


class EnginePaths:
    """Translates paths of this process into paths of the engine's host."""

    def __init__(self, mounts: list[dict[str, Any]] | None) -> None:
        # None: not in one of the engine's containers, paths are the engine's.
        self._mounts = None if mounts is None else sorted(
            ((PurePosixPath(m["Destination"]), PurePosixPath(m["Source"])) for m in mounts),
            key=lambda mount: len(mount[0].parts), reverse=True)

    @classmethod
    def of_client(cls, client: Any) -> EnginePaths:
        """The translation for this process, asking ``client``'s engine about its container."""
        from docker.errors import NotFound

        container_id = read_own_container_id()
        if container_id is None:
            return cls(None)
        try:
            mounts = client.api.inspect_container(container_id)["Mounts"]
        except NotFound:
            return cls(None)  # a container of another engine: that engine shares no paths
        return cls(mounts)

    def source(self, path: Path) -> str:
        """``path`` (absolute) as the engine's host knows it.

        Raises:
            SandboxError: it is in this container's own layer, on no mount.
        """
        if self._mounts is None:
            return str(path)
        wanted = PurePosixPath(path)
        for destination, source in self._mounts:  # the deepest mount first
            if wanted == destination or destination in wanted.parents:
                return str(source / wanted.relative_to(destination))
        raise SandboxError(
            f"the workspace {path} is not on a volume of this worker's container, so the "
            "Docker engine cannot mount a sandbox from it: put JOBS_WORKSPACE_DIR on a volume")

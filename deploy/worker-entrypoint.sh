#!/bin/sh
# Dockerfile.worker's entrypoint: runs the container's command as user `worker`.
#
# Every service starts as `worker` already and this only execs its command.
# Compose's worker-fix starts as root, because it talks to the host's Docker
# engine: its socket's group differs from host to host, so it is read here and
# joined, and the workspace volume is made the worker's. Then root is dropped
# for good (no capabilities, no way back) before the worker's command runs.
set -eu

if [ "$(id -u)" != 0 ]; then
    exec "$@"
fi

groups=--clear-groups
if [ -S /var/run/docker.sock ]; then
    groups="--groups=$(stat -c %g /var/run/docker.sock)"
fi
if [ -n "${JOBS_WORKSPACE_DIR:-}" ]; then
    mkdir -p "$JOBS_WORKSPACE_DIR"
    chown worker:worker "$JOBS_WORKSPACE_DIR"
fi
export HOME=/home/worker
exec setpriv --reuid=worker --regid=worker "$groups" --inh-caps=-all --bounding-set=-all \
    --no-new-privs -- "$@"

"""Attack: start far more processes than the limit (then exit 0, as if all went well)."""

import os
import subprocess

children = []
try:
    for _ in range(400):
        children.append(subprocess.Popen(["sleep", "60"]))
except OSError as error:
    print(f"fork refused after {len(children)}: {error!r}", flush=True)
for child in children:
    child.kill()
os._exit(0)

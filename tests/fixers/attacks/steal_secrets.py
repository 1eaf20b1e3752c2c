"""Attack: find the worker's secrets in my environment and in every /proc/*/environ."""

import json
import os
import sys
from pathlib import Path

markers = sys.argv[1:]  # strings that only the worker's environment holds
found = {}
for name, value in os.environ.items():
    if any(m in name or m in value for m in markers):
        found[f"env:{name}"] = value
for environ in Path("/proc").glob("[0-9]*/environ"):
    try:
        data = environ.read_bytes()
    except OSError:
        continue
    for m in markers:
        if m.encode() in data:
            found[str(environ)] = m
print(json.dumps({"pids_seen": len(list(Path("/proc").glob("[0-9]*"))), "found": found}))

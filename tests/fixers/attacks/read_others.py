"""Attack: read another fix job's sandbox and the repository cache (paths given)."""

import contextlib
import json
import os
import sys

read = {}
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as f:
            read[path] = f.read(200).decode(errors="replace")
    except OSError:
        pass
    with contextlib.suppress(OSError):
        read[os.path.dirname(path) + "/"] = ",".join(os.listdir(os.path.dirname(path)))
print(json.dumps({"read": read}))

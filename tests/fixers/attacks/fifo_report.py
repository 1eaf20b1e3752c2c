"""Attack: make the report a FIFO (reading it would block), or a link to a host file."""

import os
import sys

path = os.environ["FIX_REPORT"]
if sys.argv[1] == "fifo":
    os.mkfifo(path)
else:
    os.symlink(sys.argv[2], path)
print("report planted")

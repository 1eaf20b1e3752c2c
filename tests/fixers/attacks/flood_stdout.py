"""Attack: print argv[1] megabytes as fast as possible."""

import os
import sys

block = (b"A" * 1023 + b"\n") * 1024
for _ in range(int(sys.argv[1])):
    os.write(1, block)
os.write(1, b"the last line\n")

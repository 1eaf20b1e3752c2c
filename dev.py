"""Developer entry point: needs only Python 3.11+; makes and uses ``.venv``.

    python3 dev.py up      # run the system (embedded PostgreSQL unless DATABASE_URL)
    python3 dev.py test    # run the whole test suite (embedded unless TEST_DATABASE_URL)
    python3 dev.py lint    # ruff and mypy

Extra arguments go to the tool: ``python3 dev.py test -k retries``,
``python3 dev.py up --once``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
# Reinstall when the project's dependencies change.
STAMP = VENV / ".pts-jobs-installed"


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may run on any python3
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != wanted:
        print("installing dependencies into .venv ...", flush=True)
        run([PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
        run([PYTHON, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[dev]"])
        STAMP.write_text(wanted)


def run(command: list, **kwargs) -> None:
    result = subprocess.run([str(part) for part in command], cwd=ROOT, **kwargs)
    if result.returncode != 0:
        sys.exit(result.returncode)


def main() -> None:
    commands = {
        "up": [[PYTHON, "demo.py"]],
        "test": [[PYTHON, "-m", "pytest"]],
        "lint": [[PYTHON, "-m", "ruff", "check", "."], [PYTHON, "-m", "mypy", "."]],
    }
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    ensure_venv()
    steps = commands[sys.argv[1]]
    try:
        for step in steps[:-1]:
            run(step)
        run([*steps[-1], *sys.argv[2:]])
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()

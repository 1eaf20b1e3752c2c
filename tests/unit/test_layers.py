"""The architecture, checked: imports flow one way and every module imports alone.

The layers, lowest first (a module may import its own unit and lower layers,
never a higher one, not even inside a function):

    settings -> embedded, pgbroker -> pipeline, middleware -> admin_server
    -> broker -> actors -> scheduler, demo, web -> bench, cli

``broker.py`` sits below ``actors/`` because Dramatiq binds an actor to its
broker when the actor is declared: actor modules import the broker module
(Dramatiq's own advice), and the broker knows nothing of them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.environment import ROOT

LAYERS = {
    "settings": 0,
    "embedded": 1, "pgbroker": 1,
    "pipeline": 2, "middleware": 2,
    "admin_server": 3,
    "broker": 4,
    "actors": 5,
    "scheduler": 6, "demo": 6, "dev": 6, "web": 6,
    "bench": 7,  # bench.web_bench serves the dashboard
    "cli": 7,  # runs the scheduler and the dashboard
}
SOURCES = sorted(
    path for unit in LAYERS
    for path in ([ROOT / f"{unit}.py"] if (ROOT / f"{unit}.py").exists()
                 else (ROOT / unit).rglob("*.py"))
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside a function."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.add(node.module)
    return found


def unit_of(module: str) -> str | None:
    top = module.split(".")[0]
    return top if top in LAYERS else None


GRAPH = {
    module_name(path): {unit_of(m) for m in imports(path)} - {None}
    for path in SOURCES
}


def test_every_import_goes_to_the_same_or_a_lower_layer():
    upward = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if target is not None and target != unit_of(module)
        and LAYERS[target] >= LAYERS[unit_of(module) or ""]
    ]
    assert upward == []


def test_there_is_no_import_cycle_between_units():
    edges: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        edges.setdefault(unit_of(module) or "", set()).update(
            t for t in targets if t and t != unit_of(module))

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    assert [unit for unit in edges if reaches(unit, unit, set())] == []


def test_the_domain_and_the_broker_import_nothing_of_the_actors():
    assert [m for m, targets in GRAPH.items()
            if unit_of(m) in ("pgbroker", "pipeline", "middleware") and "actors" in targets] == []


# Modules that need a run's environment to import: the benchmark's worker module,
# and the peers' drivers, which run in the peers' own virtualenv (bench/peers.py
# makes it), never in the project's.
NEEDS_ENVIRONMENT = {"bench.workers"} | {m for m in GRAPH if m.startswith("bench.peers_py.")}


@pytest.mark.parametrize("module", sorted(set(GRAPH) - NEEDS_ENVIRONMENT))
def test_every_module_imports_on_its_own_in_a_fresh_interpreter(module, fresh_imports):
    assert fresh_imports[module] == ""


# Run in one interpreter that has imported the libraries but nothing of the project:
# each module is imported in a child forked from it, so no project module is
# loaded before the one under test, and no interpreter start is paid per module.
_IMPORT_EACH = """
import importlib, os, sys, traceback
import dramatiq, dramatiq_pg, periodiq, prometheus_client, psycopg2, pydantic, pydantic_settings
import asyncio, email_validator, http.server, pendulum, psycopg2.extras, pydantic.dataclasses
import dramatiq.cli, dramatiq.results, dramatiq.middleware, prometheus_client.multiprocess
assert not [m for m in sys.modules if m.split(".")[0] in sys.argv[1].split(",")], "too early"
children = []
for module in sys.argv[2:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(module)
        except BaseException:
            # One write of less than PIPE_BUF: lines of children never interleave.
            text = traceback.format_exc().replace(chr(10), " | ")[-3000:]
            os.write(1, f"{module} {text}\\n".encode())
            os._exit(1)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
"""

@pytest.fixture(scope="module")
def fresh_imports() -> dict[str, str]:
    """``{module: traceback}`` of importing each module first, alone ("" if it worked)."""
    modules = sorted(set(GRAPH) - NEEDS_ENVIRONMENT)
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, ",".join(LAYERS), *modules],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    failures = dict(line.split(" ", 1) for line in result.stdout.splitlines() if line)
    return {module: failures.get(module, "") for module in modules}

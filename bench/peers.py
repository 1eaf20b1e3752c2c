"""This project beside its peers, in one run, on one PostgreSQL it starts itself.

    .venv/bin/python -m bench.peers                  # everything, median of 3 (~8 min)
    .venv/bin/python -m bench.peers --repeats 1 --only ours-1,floor
    .venv/bin/python -m bench.peers --repeats 1 --only pgqueuer,procrastinate,pgboss,floor
    .venv/bin/python -m bench.peers --repeats 1 --only floor,floor-psycopg3

The server is a fresh ``pgserver`` cluster (initdb defaults) in a temporary
directory, stopped and deleted at the end; nothing else runs on it. Systems:

* ``ours-1``, ``ours-2``: this project's broker with the production middleware
  stack (``broker.py``), 1 and 2 ``dramatiq`` processes x 8 threads;
* ``dramatiq-pg``: plain dramatiq-pg 0.12 with the same Dramatiq middleware;
* ``pgqueuer``: PgQueuer (asyncpg, uvloop, LISTEN/NOTIFY), one worker capped at
  8 jobs in flight (``max_concurrent_tasks=8``) with batches of 4, the largest
  that cap allows (see ``bench/peers_py/pgqueuer_bench.py`` for why not the
  entrypoint's ``concurrency_limit`` with its default batch of 10);
* ``procrastinate``: procrastinate 3 on its psycopg 3 connector, one worker with
  ``concurrency=8`` and LISTEN/NOTIFY; batches by ``batch_defer_async``;
* ``pgboss``: pg-boss 12 on Node 22, ``work()`` with ``batchSize: 10``,
  ``localConcurrency: 8``, ``burstWhenBatchFull`` and the least polling interval
  it takes (0.5 s), and its LISTEN/NOTIFY (``useListenNotify``, queues with
  ``notify``), which 12.x has: without it a job sent to an idle worker waits for
  the next poll (``BENCH_PGBOSS_NOTIFY=0`` measures that);
* ``floor``: ``bench/floor.py``, the least a Python queue on psycopg2 does
  (claim one row and delete it, 8 threads, LISTEN), the floor the others stand on;
* ``floor-psycopg3``: the same queue on psycopg 3 (``bench/peers_py/
  floor_psycopg3_bench.py``, run by the peers' virtualenv like the Python peers):
  its sync API, 8 threads with an autocommit connection each, psycopg's defaults
  (server-side binding, prepared after 5 executions), LISTEN by its
  ``notifies()``; enqueue is one statement a job (the INSERT in a CTE whose
  SELECT calls ``pg_notify``, as the extended protocol takes one statement).

The same measures for each: enqueue one by one (a job per statement, as a web
request sends one) and in batches of 1,000, drain of 20,000 queued no-op jobs
(from the first job taken to the last one finished), pickup latency of a job
sent to an idle worker (p50, p99), and the peak RSS of one worker process
during the drain. Each figure is the median of ``--repeats`` runs. The table is
printed and written to ``bench/results/peers-<date>.md``.

The drain's jobs go into a table the server has no statistics of yet (it was
made empty moments before, and the bench does not wait for autovacuum), so each
system drains with the plans PostgreSQL picks without them. Some peers care a
lot: in one run here procrastinate drained about 230 jobs/s so and 1,100/s once
its table was analyzed, pg-boss 6,000/s and 13,700/s, pgqueuer 2,850/s and
3,350/s. ``--analyze`` runs ANALYZE on each system's queue table (ours and
dramatiq-pg's too) once its drain's jobs are queued, as autovacuum would within
a minute or so, and says so in the table's heading.

The peers run outside the project's dependencies, in runtimes the bench makes
on first use (it says so) under the gitignored ``.bench-peers/`` and reuses
after, until their pins change: ``.bench-peers/venv`` for the Python peers
(``bench/peers_py/requirements.txt``) and ``.bench-peers/node`` for Node and
pg-boss from the npm registry (``bench/peers_js/package.json``: the ``node``
package brings a Node 22 binary, as pg-boss 12 needs >= 22.12). Each peer has
a driver script (``bench/peers_py/*_bench.py``, ``bench/peers_js/pgboss.mjs``)
that this module runs as a subprocess with the cluster's URL and a command
(``enqueue``, ``fill``, ``worker``, ``pickup``, ``setup``, ``drop``,
``version``) and whose stdout it reads (the protocol is in
``bench/peers_py/peer_common.py``). Each peer has a database of its own on the
cluster, made fresh and dropped by its script. The drain's 20,000 jobs are
queued by the peer's batch API (the floors: one ``generate_series`` INSERT)
before its worker starts, and the window is the peer's own record (pgqueuer's
log, procrastinate's events, pg-boss's ``started_on``/``completed_on``, the
psycopg 3 floor's own clock, as ``bench/floor.py``'s); the worker process whose
RSS is measured is the peer's (for pg-boss, node itself). Pickup is 200 jobs sent one at a time,
from just before the peer's send to the handler's first line. A peer whose
runtime cannot be installed (no network, no npm) is named in its row as not
installed and the others go on; their versions in the table are read at run time.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg2

from bench import broker_bench, floor

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SYSTEMS = ["ours-1", "ours-2", "dramatiq-pg", "pgqueuer", "procrastinate", "pgboss", "floor",
           "floor-psycopg3"]
LABELS = {
    "ours-1": "**this project**, 1 process x 8 threads",
    "ours-2": "this project, 2 processes x 8 threads",
    "dramatiq-pg": "plain dramatiq-pg 0.12, 1 process x 8 threads",
    # The peers' versions are read at run time (see Peer.label).
    "pgqueuer": "pgqueuer {version} (8 slots)",
    "procrastinate": "procrastinate {version} (concurrency 8)",
    "pgboss": "pg-boss {version} (batch 10, burst, LISTEN/NOTIFY, 8 workers; Node {node})",
    "floor": "Python floor (psycopg2, claim 1 + delete, LISTEN, 8 threads)",
    "floor-psycopg3": "Python floor (psycopg {version}, claim 1 + delete, LISTEN, 8 threads)",
}
# The peers' own runtimes, made on first use and reused after: never the project's.
PEERS_HOME = ROOT / ".bench-peers"
PEERS_VENV = PEERS_HOME / "venv"
PEERS_NODE = PEERS_HOME / "node"
PEERS_PY = ROOT / "bench" / "peers_py"
PEERS_JS = ROOT / "bench" / "peers_js"
PEER_SCRIPTS = {
    "pgqueuer": PEERS_PY / "pgqueuer_bench.py",
    "procrastinate": PEERS_PY / "procrastinate_bench.py",
    "pgboss": PEERS_JS / "pgboss.mjs",
    "floor-psycopg3": PEERS_PY / "floor_psycopg3_bench.py",
}
NODE_AT_LEAST = (22, 12)  # pg-boss 12's engines


@dataclass
class Run:
    single: list[float] = field(default_factory=list)
    batch: list[float] = field(default_factory=list)
    drain: list[float] = field(default_factory=list)
    stalled: list[int] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# -- the floor ---------------------------------------------------------------

def floor_enqueue(url: str, single: int, batch: int) -> tuple[float, float]:
    floor.setup(url)
    conn = psycopg2.connect(url)
    conn.autocommit = True
    cur = conn.cursor()
    started = time.perf_counter()
    for i in range(single):
        cur.execute(floor.ENQUEUE, (json.dumps({"kind": "noop", "i": i}),))
    one = single / (time.perf_counter() - started)
    started = time.perf_counter()
    for start in range(0, batch, 1000):
        cur.execute(floor.ENQUEUE_MANY,
                    ([json.dumps({"kind": "noop", "i": i}) for i in range(start, start + 1000)],))
    many = batch / (time.perf_counter() - started)
    conn.close()
    return one, many


def floor_worker(url: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "bench.floor", "worker", url, "8"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def floor_stop(proc: subprocess.Popen) -> tuple[float, float, int]:
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    _, first, last, done = out.split()[-4:]
    return float(first), float(last), int(done)


def floor_drain(url: str, count: int, analyze: bool = False) -> tuple[float, float]:
    floor.setup(url)
    floor.fill(url, count)
    if analyze:
        broker_bench.execute(url, f"ANALYZE {floor.SCHEMA}.jobs")
    proc = floor_worker(url)
    peak = 0.0
    conn = psycopg2.connect(url)
    conn.autocommit = True
    cur = conn.cursor()
    while True:
        time.sleep(0.25)
        peak = max(peak, psutil.Process(proc.pid).memory_info().rss / 2**20)
        cur.execute(f"SELECT count(*) FROM {floor.SCHEMA}.jobs")
        if cur.fetchone()[0] == 0:
            break
    conn.close()
    first, last, done = floor_stop(proc)
    return done / max(last - first, 1e-3), peak


def floor_pickup(url: str, samples: int) -> list[float]:
    floor.setup(url)
    proc = floor_worker(url)
    conn = psycopg2.connect(url)
    conn.autocommit = True
    cur = conn.cursor()
    try:
        for i in range(samples):
            cur.execute(floor.ENQUEUE, (json.dumps({"kind": "ping", "sent_at": time.time()}),))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                cur.execute(f"SELECT count(*) FROM {floor.SCHEMA}.pickups")
                if cur.fetchone()[0] > i:
                    break
                time.sleep(0.005)
            time.sleep(0.01)  # idle again, as for the brokers
        cur.execute(f"SELECT (started_at - sent_at) * 1000 FROM {floor.SCHEMA}.pickups")
        return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()
        floor_stop(proc)


# -- the peers: pgqueuer, procrastinate, pg-boss, the psycopg 3 floor -----------

class PeerUnavailable(Exception):
    """A peer's runtime could not be installed (no network, no npm, ...)."""


def _digest(*paths: Path) -> str:
    return hashlib.sha256(b"".join(path.read_bytes() for path in paths)).hexdigest()


def _install_step(command: list[str], what: str, cwd: Path | None = None) -> None:
    try:
        done = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True,
                              text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PeerUnavailable(f"{what}: {error}") from error
    if done.returncode != 0:
        lines = [line.removeprefix("npm error").strip()
                 for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        # The error itself, not the stack or the log file's name after it.
        errors = [line for line in lines if "Error:" in line or "ERROR:" in line]
        reason = (errors or lines or [f"exit {done.returncode}"])[0 if errors else -1]
        raise PeerUnavailable(f"{what} failed: {reason}")


def ensure_python_peers() -> Path:
    """``.bench-peers/venv`` with bench/peers_py/requirements.txt; its python."""
    requirements = PEERS_PY / "requirements.txt"
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / ".bench-installed"
    wanted = _digest(requirements)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    if not python.exists():
        print(f"peers: creating {PEERS_VENV.relative_to(ROOT)} ...", flush=True)
        _install_step([sys.executable, "-m", "venv", str(PEERS_VENV)], "python -m venv")
    print(f"peers: installing {', '.join(_pinned(requirements))} into "
          f"{PEERS_VENV.relative_to(ROOT)} (pip) ...", flush=True)
    _install_step([str(python), "-m", "pip", "install", "--quiet",
                   "--disable-pip-version-check", "-r", str(requirements)], "pip install")
    stamp.write_text(wanted)
    return python


def _pinned(requirements: Path) -> list[str]:
    return [line.strip() for line in requirements.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def ensure_node_peers() -> Path:
    """``.bench-peers/node`` with bench/peers_js/package.json (Node 22 and pg-boss 12
    from the npm registry); the Node binary."""
    package = PEERS_JS / "package.json"
    node = PEERS_NODE / "node_modules" / "node" / "bin" / "node"
    stamp = PEERS_NODE / ".bench-installed"
    wanted = _digest(package)
    if not (node.exists() and stamp.exists() and stamp.read_text() == wanted):
        npm = shutil.which("npm")
        if npm is None:
            raise PeerUnavailable("npm not found (pg-boss and its Node come from npm)")
        PEERS_NODE.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package, PEERS_NODE / "package.json")
        deps = json.loads(package.read_text())["dependencies"]
        print(f"peers: installing {', '.join(f'{k}@{v}' for k, v in deps.items())} into "
              f"{PEERS_NODE.relative_to(ROOT)} (npm) ...", flush=True)
        _install_step([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
                      "npm install", cwd=PEERS_NODE)
        if not node.exists():
            raise PeerUnavailable("npm installed the node package without its binary "
                                  "(were install scripts disabled?)")
        stamp.write_text(wanted)
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True,
                                 check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        raise PeerUnavailable(f"{node.relative_to(ROOT)} does not run: {error}") from error
    if tuple(int(part) for part in version.lstrip("v").split(".")[:2]) < NODE_AT_LEAST:
        raise PeerUnavailable(f"Node {version} is older than pg-boss 12 needs")
    return node.resolve()  # the binary itself: the worker's RSS is node's own


class Peer:
    """One peer's driver script, run by the peer's own runtime, one command a call."""

    def __init__(self, system: str, runtime: Path) -> None:
        self.system = system
        self.argv = [str(runtime), str(PEER_SCRIPTS[system])]
        # Nothing of the project's environment leaks into the peer's.
        self.env = {key: value for key, value in os.environ.items()
                    if key not in ("PYTHONPATH", "VIRTUAL_ENV", "DATABASE_URL")}
        self.env["PGBOSS_HOME"] = str(PEERS_NODE)

    def call(self, url: str, *args: object, timeout: float = 300) -> list[str]:
        done = subprocess.run([*self.argv, url, *map(str, args)], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"{self.system} {args[0]} exited {done.returncode}:\n{tail}")
        return done.stdout.split()

    def answer(self, url: str, word: str, *args: object, timeout: float = 300) -> list[str]:
        out = self.call(url, *args, timeout=timeout)
        if word not in out:
            raise RuntimeError(f"{self.system} {args[0]} printed no {word!r}: {out[-10:]}")
        return out[out.index(word) + 1:]

    def label(self) -> str:
        words = self.answer("-", "version", "version", timeout=60)
        return LABELS[self.system].format(version=words[0],
                                          node=words[1] if len(words) > 1 else "?")

    def start_worker(self, url: str, expect: int) -> tuple[subprocess.Popen, queue.Queue]:
        proc = subprocess.Popen([*self.argv, url, "worker", str(expect)], cwd=ROOT, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        lines: queue.Queue = queue.Queue()
        assert proc.stdout is not None and proc.stderr is not None
        stderr: list[str] = []
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
        threading.Thread(target=stderr.extend, args=(proc.stderr,), daemon=True).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                if proc.poll() is not None:
                    break
                continue
            if line is None:
                break
            if line.strip() == "ready":
                return proc, lines
        stop_peer_worker(proc)
        raise RuntimeError(f"{self.system} worker did not start:\n" + "".join(stderr[-15:]))


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def stop_peer_worker(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def peer_drain(url: str, peer: Peer, count: int, budget: float,
               analyze: bool = False) -> broker_bench.Drain:
    """``count`` no-op jobs queued by the peer's batch API, then its worker started:
    rate over the window it records (first taken to last finished)."""
    peer.answer(url, "filled", "fill", count, *(["analyze"] if analyze else []))
    proc, lines = peer.start_worker(url, count)
    started = time.monotonic()
    peak, done, last_progress, window = 0.0, 0, started, None
    try:
        while window is None:
            time.sleep(0.25)
            peak = max(peak, broker_bench.worker_rss_mb(proc))
            while not lines.empty():
                line = lines.get_nowait()
                if line is None:
                    raise RuntimeError(f"{peer.system} worker exited during the drain")
                words = line.split()
                if words[:1] == ["progress"] and int(words[1]) != done:
                    done, last_progress = int(words[1]), time.monotonic()
                elif words[:1] == ["window"]:
                    window = float(words[1]), float(words[2]), int(words[3])
            now = time.monotonic()
            if window is None and (now - last_progress > 15 or now - started > budget):
                return broker_bench.Drain(count, done, max(last_progress - started, 1e-3), peak,
                                          stalled=True)
    finally:
        stop_peer_worker(proc)
    first, last, finished = window
    return broker_bench.Drain(count, finished, max(last - first, 1e-3), peak, stalled=False)


def peer_pickup(url: str, peer: Peer, samples: int) -> list[float]:
    peer.call(url, "setup")
    proc, _ = peer.start_worker(url, 0)
    try:
        out = peer.answer(url, "pickups", "pickup", samples, timeout=samples * 10 + 60)
    finally:
        stop_peer_worker(proc)
    return [float(word) for word in out]


def peer_run(url: str, peer: Peer, run: Run, *, drain: int, single: int, batch: int,
             pickups: int, analyze: bool) -> list[float]:
    try:
        one, many = (float(word) for word in peer.answer(url, "enqueue", "enqueue", single,
                                                          batch)[:2])
        run.single.append(one)
        run.batch.append(many)
        result = peer_drain(url, peer, drain, budget=120.0, analyze=analyze)
        run.drain.append(result.rate)
        run.rss.append(result.peak_rss_mb)
        if result.stalled:
            run.stalled.append(result.done)
        return peer_pickup(url, peer, pickups)
    finally:
        peer.call(url, "drop")


# -- one run of one system ---------------------------------------------------

def run_once(url: str, system: str, run: Run, *, drain: int, single: int, batch: int,
             pickups: int, peer: Peer | None = None, analyze: bool = False) -> None:
    if peer is not None:
        latencies = peer_run(url, peer, run, drain=drain, single=single, batch=batch,
                             pickups=pickups, analyze=analyze)
    elif system == "floor":
        one, many = floor_enqueue(url, single, batch)
        rate, peak = floor_drain(url, drain, analyze)
        latencies = floor_pickup(url, pickups)
        run.single.append(one)
        run.batch.append(many)
        run.drain.append(rate)
        run.rss.append(peak)
    else:
        kind = "plain" if system == "dramatiq-pg" else "ours"
        processes = 2 if system == "ours-2" else 1
        single_rate, batch_rate = broker_bench.measure_enqueue(url, kind, single, batch)
        run.single.append(single_rate)
        if batch_rate is not None:
            run.batch.append(batch_rate)
        result = broker_bench.measure_drain(url, kind, drain, budget=120.0, processes=processes,
                                            analyze=analyze)
        run.drain.append(result.rate)
        run.rss.append(result.peak_rss_mb)
        if result.stalled:
            run.stalled.append(result.done)
        latencies = broker_bench.measure_pickup(url, kind, pickups)
        broker_bench.reset_schema(url, kind)
    run.p50.append(broker_bench.percentile(latencies, 50))
    run.p99.append(broker_bench.percentile(latencies, 99))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = psutil.virtual_memory().total / 2**30
    return (f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, "
            f"{platform.system()} {platform.release()}")


def table(results: dict[str, Run], *, drain: int) -> str:
    def num(value: float | None, fmt: str = ",.0f") -> str:
        return "-" if value is None else format(value, fmt)

    lines = [
        f"| system | enqueue 1-by-1 /s | batch enqueue /s | drain {drain:,} /s "
        "| pickup p50 ms | pickup p99 ms | worker RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for system, run in results.items():
        if run.failures and not run.drain:
            reason = run.failures[-1].replace("|", "/")
            lines.append(f"| {LABELS[system]}: {reason} | - | - | - | - | - | - |")
            continue
        drained = num(median(run.drain))
        if run.stalled:
            drained += f" (stalled at {int(statistics.median(run.stalled)):,})"
        lines.append(
            f"| {LABELS[system]} | {num(median(run.single))} | {num(median(run.batch))} "
            f"| {drained} | {num(median(run.p50), '.1f')} | {num(median(run.p99), '.1f')} "
            f"| {num(median(run.rss))} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(SYSTEMS),
                        help=f"comma-separated, of {', '.join(SYSTEMS)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--drain", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--pickups", type=int, default=200)
    parser.add_argument("--analyze", action="store_true",
                        help="ANALYZE each queue table once its drain's jobs are queued")
    args = parser.parse_args()
    systems = [s for s in args.only.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems: {sorted(unknown)}")

    peers: dict[str, Peer] = {}
    results = {system: Run() for system in systems}
    for system in systems:
        if system not in PEER_SCRIPTS:
            continue
        try:
            runtime = ensure_node_peers() if system == "pgboss" else ensure_python_peers()
            peers[system] = Peer(system, runtime)
            LABELS[system] = peers[system].label()
        except (PeerUnavailable, RuntimeError, subprocess.SubprocessError) as error:
            reason = str(error).splitlines()[0]
            print(f"peers: {system} is left out: {reason}", flush=True)
            LABELS[system] = LABELS[system].split(" {")[0].split(" (")[0]
            results[system].failures.append(f"not installed ({reason})")

    with broker_bench.fresh_server("bench-peers-") as url:
        (version,) = broker_bench.execute(url, "SHOW server_version")[0]
        # Round-robin, so a slow moment of the machine falls on every system alike.
        for repeat in range(args.repeats):
            for system in systems:
                if system in PEER_SCRIPTS and system not in peers:
                    continue  # not installed: its row says so
                print(f"[{repeat + 1}/{args.repeats}] {system} ...", flush=True)
                try:
                    run_once(url, system, results[system], drain=args.drain,
                             single=args.single, batch=args.batch, pickups=args.pickups,
                             peer=peers.get(system), analyze=args.analyze)
                except (RuntimeError, subprocess.SubprocessError) as error:
                    if system not in peers:
                        raise
                    # A peer that breaks is reported, and the others go on.
                    print(f"  {system} failed: {error}", flush=True)
                    results[system].failures.append(
                        f"failed ({str(error).splitlines()[0]})")
    when = datetime.datetime.now(datetime.UTC)
    text = "\n".join([
        f"Measured {when:%Y-%m-%d %H:%M} UTC on {machine()}, PostgreSQL {version} "
        "(fresh cluster, initdb defaults), no-op jobs, "
        + ("queue tables ANALYZEd once the drain's jobs are queued, " if args.analyze else "")
        + f"median of {args.repeats}; `python -m bench.peers"
        + (" --analyze`." if args.analyze else "`."),
        "",
        table(results, drain=args.drain),
        "",
    ])
    print()
    print(text)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"peers-{when:%Y%m%d-%H%M}.md"
    out.write_text(text)
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

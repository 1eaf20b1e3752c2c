"""How close one-by-one sends come to what the queue table allows.

    .venv/bin/python -m bench.enqueue_ceiling [--sends 2000] [--repeats 3]

On a fresh ``pgserver`` cluster (initdb defaults), one connection, one job a
statement, each autocommitted, the median of ``--repeats`` rounds, every step in
each round:

* ``send()``: Dramatiq's ``actor.send`` on this project's broker;
* the prepared ``INSERT`` with a NOTIFY that ``send()`` runs, with psycopg2 alone;
* the same ``INSERT`` sent as text, as psycopg2 sends a statement;
* that into a copy of the table with only its primary key;
* the Python floor's ``INSERT`` with a NOTIFY (``bench/floor.py``);
* ``enqueue_one()``, which stores a message sent inside a job (fenced by its
  delivery) or sent again, called with psycopg2 alone.

Each rate down to the floor's is printed with its share of the one below it,
and every rate with its share of the floor's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable

import psycopg2

from bench import broker_bench, floor
from pgbroker.broker import PREPARED
from pgbroker.prepared import PreparedStatements

SCHEMA = broker_bench.SCHEMAS["ours"]
MESSAGE = json.dumps({"queue_name": "bench", "actor_name": "noop", "args": [1], "kwargs": {},
                      "options": {}, "message_id": "x", "message_timestamp": 1})
ENQUEUE_ONE = (f"SELECT {SCHEMA}.enqueue_one(%s::uuid, %s::text, %s::jsonb, %s::bytea, "
               "%s::smallint, %s::integer, %s::text, %s::uuid, %s::uuid)")


def rate(step: Callable[[], object], sends: int) -> float:
    for _ in range(100):  # warm: plans cached, pages in memory
        step()
    started = time.perf_counter()
    for _ in range(sends):
        step()
    return sends / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with broker_bench.fresh_server("bench-ceiling-") as url:
        broker_bench.reset_schema(url, "ours")
        floor.setup(url)
        broker_bench.execute(url, f"CREATE TABLE {SCHEMA}.queue_pkey_only "
                             f"(LIKE {SCHEMA}.queue INCLUDING DEFAULTS)")
        broker_bench.execute(url, f"ALTER TABLE {SCHEMA}.queue_pkey_only "
                             "ADD PRIMARY KEY (message_id)")
        os.environ.update(broker_bench.env_for(url, "ours"))
        import bench.workers as workers

        conn = psycopg2.connect(url)
        conn.autocommit = True
        cur = conn.cursor()
        statements = PreparedStatements(PREPARED, workers.BROKER._text)
        # The same INSERT and parameters as text, as psycopg2 sends a statement.
        as_text = (workers.BROKER._text("enqueue_new", conn).rstrip().rstrip(";")
                   + ";\nNOTIFY bench_ceiling")
        pkey_only = as_text.replace('."queue"', ".queue_pkey_only")
        assert pkey_only != as_text

        def params() -> dict[str, object]:
            return {"message_id": str(uuid.uuid4()), "queue_name": "bench", "message": MESSAGE,
                    "message_bytes": None, "priority": 0, "delay_ms": 0, "last_error": None}

        steps: dict[str, Callable[[], object]] = {
            "send()": lambda: workers.noop.send(1),
            "its INSERT, prepared": lambda: statements.execute(
                cur, "enqueue_new", list(params().values()), then="NOTIFY bench_ceiling"),
            "its INSERT as text": lambda: cur.execute(as_text, params()),
            "as text, primary key only": lambda: cur.execute(pkey_only, params()),
            "floor INSERT": lambda: cur.execute(floor.ENQUEUE, (MESSAGE,)),
            "enqueue_one()": lambda: cur.execute(ENQUEUE_ONE, (
                str(uuid.uuid4()), "bench", MESSAGE, None, 0, 0, None, None, None)),
        }
        rates: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.repeats):
            for name, step in steps.items():
                rates[name].append(rate(step, args.sends))
        conn.close()
        workers.BROKER.close()

    medians = {name: statistics.median(values) for name, values in rates.items()}
    names = list(medians)
    print(f"{'step':<32} {'sends/s':>8} {'of the next':>12} {'of the floor':>13}")
    for index, name in enumerate(names):
        following = (f"{medians[name] / medians[names[index + 1]]:.0%}"
                     if index + 1 < names.index("floor INSERT") + 1 else "")
        print(f"{name:<32} {medians[name]:>8,.0f} {following:>12} "
              f"{medians[name] / medians['floor INSERT']:>13.0%}")


if __name__ == "__main__":
    main()

"""The periodic scheduler: periodiq's cron and clock, made safe to run twice.

    pts-jobs scheduler [module ...]      # default module: actors

periodiq 0.14, used as it is, was seen to send every tick twice when two
schedulers run (a rolling deploy), to send a tick again when restarted within
its minute, to never fire cron's Sunday (``0 0 * * 0``, ``@weekly``), to skip a
periodic job's retries, and to stop at the first failed send. Here:

* each tick is sent as a singleton (key ``periodic:<actor>``, slot = the tick's
  minute), so PostgreSQL keeps one job per tick whatever the number of
  schedulers, and at most one job per periodic actor waits or runs at a time
  (no pile-up while workers are down);
* ``middleware.periodic.cron`` accepts Sunday as 0 or 7, as cron does;
* periodiq's middleware, which skipped late messages and retries, is not used;
* a send that fails is logged and the next tick comes as usual.

Declare a periodic actor with ``periodic=cron("*/10 * * * *")``.
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys
from collections.abc import Sequence

import dramatiq
import pendulum
from periodiq import Scheduler

logger = logging.getLogger("pts-jobs.scheduler")


def tick_slot(now: pendulum.DateTime) -> int:
    """The tick's minute since the epoch: equal for every scheduler sending it."""
    return int(now.timestamp()) // 60


class DedupingScheduler(Scheduler):
    """periodiq's scheduler, sending each tick once and surviving failed sends."""

    def send_actors(self, actors, now) -> None:
        for actor in actors:
            try:
                message = actor.send_with_options(
                    scheduled_at=str(now),
                    singleton_key=f"periodic:{actor.actor_name}",
                    singleton_slot=tick_slot(now),
                )
            except Exception as error:  # the database may be down: try next tick
                logger.error("could not send %s for %s: %s", actor.actor_name, now, error)
                continue
            if message.options.get("deduplicated"):
                logger.info("%s at %s: already sent or still running (job %s)",
                            actor.actor_name, now, message.message_id)
            else:
                logger.info("sent %s at %s (job %s)", actor.actor_name, now, message.message_id)


def periodic_actors(broker) -> list:
    return [actor for actor in broker.actors.values() if "periodic" in actor.options]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(modules: Sequence[str] = ("actors",)) -> int:
    """Run the scheduler until interrupted. Returns the exit code."""
    for module in modules:
        importlib.import_module(module)
    actors = periodic_actors(dramatiq.get_broker())
    if not actors:
        logger.error("no periodic actor in %s", ", ".join(modules))
        return 1
    for actor in actors:
        logger.info("%-20s %s@%s", actor.options["periodic"], actor.actor_name,
                    actor.queue_name)
    scheduler = DedupingScheduler(actors=actors)
    # SIGTERM (docker stop, compose down) stops it like Ctrl-C. As a container's
    # PID 1 it would otherwise be ignored, and the scheduler killed at the grace.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        scheduler.schedule()  # sends what is due this minute; a restart is harmless
        scheduler.loop()
    except KeyboardInterrupt:
        logger.info("scheduler stopped")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main(sys.argv[1:] or ("actors",)))

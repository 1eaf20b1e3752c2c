"""The lease watch's decision: which deliveries a worker stops when it cannot renew."""

from __future__ import annotations

import psycopg2

from pgbroker.db import server_down
from pgbroker.delivery import Delivery
from pgbroker.leases import Inflight, LeaseKeeper


def keeper_holding(*deliveries: Delivery) -> LeaseKeeper:
    inflight = Inflight(on_release=lambda queue: None)
    inflight.add(deliveries)
    return LeaseKeeper(session=lambda: None, inflight=inflight, queues=lambda: [],  # type: ignore[arg-type,return-value]
                       lease_seconds=20, heartbeat_interval=5, rescue_interval=1)


def delivery(name: str, lease_until: float) -> Delivery:
    return Delivery(f"m-{name}", f"d-{name}", "q", lease_until=lease_until)


def test_a_delivery_is_stopped_a_heartbeat_before_its_lease_may_lapse():
    fresh, expiring = delivery("fresh", 100.0), delivery("expiring", 60.0)
    keeper = keeper_holding(fresh, expiring)

    assert keeper.watch(now=54.0) == []
    assert keeper.watch(now=55.0) == [expiring]
    assert expiring.gave_up and not fresh.lost
    # Held no more, so no heartbeat renews it: its lease lapses for a rescuer.
    assert keeper._inflight.held() == [fresh]


def test_a_job_already_finished_is_not_given_up_its_ack_may_still_land():
    finished = delivery("finished", 60.0)
    finished.finish()
    keeper = keeper_holding(finished)

    assert keeper.watch(now=59.0) == []
    assert not finished.gave_up and keeper._inflight.held() == [finished]


def test_nothing_is_stopped_while_the_server_is_seen_down_for_everyone():
    expiring = delivery("expiring", 60.0)
    keeper = keeper_holding(expiring)
    keeper._server_down_at = 57.0  # the last retry: refused

    assert keeper.watch(now=59.0) == [] and not expiring.lost
    # Seen down, but not lately (a hung retry since): it may be up for others.
    assert keeper.watch(now=61.0) == [expiring] and expiring.lost


def test_only_a_refusing_or_stopping_server_counts_as_down():
    def error(text: str) -> psycopg2.OperationalError:
        return psycopg2.OperationalError(text)

    assert server_down(error('connection to server at "10.0.0.5", port 5432 failed: '
                             "Connection refused\n\tIs the server running on that host?"))
    assert server_down(error('connection to server on socket "/run/pg/.s.PGSQL.5432" failed: '
                             "No such file or directory"))
    assert server_down(error('could not translate host name "postgres" to address: '
                             "Name or service not known"))
    assert server_down(error("FATAL:  the database system is starting up"))
    assert server_down(error("FATAL:  the database system is shutting down"))
    assert not server_down(error('connection to server at "10.0.0.5", port 5432 failed: '
                                 "Network is unreachable"))
    assert not server_down(error("server closed the connection unexpectedly"))
    assert not server_down(error("timeout expired"))
    assert not server_down(error("FATAL:  sorry, too many clients already"))
    assert not server_down(error('could not translate host name "postgres" to address: '
                                 "Temporary failure in name resolution"))
    # A running server's own error about a missing file is not a missing socket.
    assert not server_down(error('could not open file "base/5/1259": No such file or directory'))

"""A claimed message: Dramatiq's MessageProxy, its fields its own, equal as before."""

from __future__ import annotations

from queue import PriorityQueue

from dramatiq.broker import MessageProxy
from dramatiq.message import Message

from pgbroker.consumer import LeasedMessage
from pgbroker.delivery import Delivery


def leased(**options) -> LeasedMessage:
    message: Message = Message(queue_name="q", actor_name="a", args=(1,), kwargs={"k": 2},
                               options=options)
    return LeasedMessage(message, Delivery(message.message_id, "d-1", "q", lease_until=0.0))


def test_it_reads_as_the_message_it_wraps() -> None:
    job = leased(retries=1)
    message = job._message

    assert (job.queue_name, job.actor_name, job.message_id, job.message_timestamp,
            job.args, job.kwargs, job.options) == (
        message.queue_name, message.actor_name, message.message_id,
        message.message_timestamp, message.args, message.kwargs, message.options)
    job.options["retries"] = 2  # as Retries does: the message's own options
    assert message.options["retries"] == 2
    assert job.asdict() == message.asdict() and job.delivery.delivery_id == "d-1"


def test_it_is_equal_to_its_message_and_to_a_proxy_of_it_only() -> None:
    job, other = leased(), leased()

    assert job == job._message and job == MessageProxy(job._message)
    assert job == LeasedMessage(job._message, job.delivery)
    assert job != other and job != other._message and job != MessageProxy(other._message)
    assert job != "not a message"


def test_equal_priorities_in_the_work_queue_need_no_order_of_their_own() -> None:
    """Dramatiq's work queue holds (priority, message): ties compare messages."""
    work: PriorityQueue = PriorityQueue()
    jobs = [leased() for _ in range(50)]
    for job in jobs:
        work.put((0, job))

    taken = [work.get()[1] for _ in jobs]

    assert sorted(j.message_id for j in taken) == sorted(j.message_id for j in jobs)

"""The broker calls only the middleware that define a hook, in Dramatiq's order."""

from __future__ import annotations

import logging

import pytest
from dramatiq.middleware import Middleware, SkipMessage

from pgbroker import PostgresBroker


class Recorder(Middleware):
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name = name
        self.calls = calls

    def before_process_message(self, broker, message) -> None:
        self.calls.append(f"before {self.name}")

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        self.calls.append(f"after {self.name}")


class Silent(Middleware):
    """Defines no hook: never called."""


def broker_with(*middleware: Middleware) -> PostgresBroker:
    # Never connects: no database is needed to emit hooks.
    return PostgresBroker(url="postgresql://127.0.0.1:9/none", middleware=list(middleware))


def test_hooks_run_in_dramatiqs_order_and_skip_the_no_ops() -> None:
    calls: list[str] = []
    broker = broker_with(Recorder("a", calls), Silent(), Recorder("b", calls))

    broker.emit_before("process_message", object())
    broker.emit_after("process_message", object(), result=None)

    assert calls == ["before a", "before b", "after b", "after a"]
    assert not any(isinstance(getattr(hook, "__self__", None), Silent)
                   for hook in broker._hooked("before_process_message"))


def test_middleware_added_later_is_called() -> None:
    calls: list[str] = []
    broker = broker_with(Recorder("a", calls))
    broker.emit_before("process_message", object())

    broker.add_middleware(Recorder("late", calls))
    broker.emit_before("process_message", object())

    assert calls == ["before a", "before a", "before late"]


def test_a_hook_set_on_one_instance_is_called() -> None:
    calls: list[str] = []
    silent = Silent()
    silent.before_enqueue = lambda broker, message, delay: calls.append("patched")  # type: ignore[method-assign]
    broker = broker_with(silent)

    broker.emit_before("enqueue", object(), None)

    assert calls == ["patched"]


def test_a_failing_hook_is_logged_and_the_rest_still_run(caplog) -> None:
    calls: list[str] = []

    class Broken(Middleware):
        def after_process_message(self, broker, message, *, result=None, exception=None):
            raise RuntimeError("boom")

    broker = broker_with(Recorder("a", calls), Broken())
    with caplog.at_level(logging.CRITICAL):
        broker.emit_after("process_message", object(), result=None)

    assert calls == ["after a"]
    assert "Unexpected failure in after_process_message" in caplog.text


def test_middleware_errors_still_stop_a_before_hook() -> None:
    class Skipper(Middleware):
        def before_process_message(self, broker, message):
            raise SkipMessage("skip")

    broker = broker_with(Skipper())
    with pytest.raises(SkipMessage):
        broker.emit_before("process_message", object())

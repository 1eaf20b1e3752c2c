"""The last dead-lettered jobs' exceptions, kept for join(fail_fast=True)."""

from __future__ import annotations

from pgbroker.failures import RecentFailures


class NeedsTwo(Exception):
    def __init__(self, first, second) -> None:
        super().__init__(f"{first} {second}")


def raised(exception: BaseException) -> BaseException:
    try:
        raise exception
    except BaseException as error:
        return error


def test_the_newest_are_kept_up_to_the_size() -> None:
    failures = RecentFailures(size=2)
    for number in range(3):
        failures.record(f"m{number}", raised(ValueError(number)))
    assert failures.get("m0") is None
    assert [getattr(failures.get(f"m{n}"), "args", None) for n in (1, 2)] == [(1,), (2,)]


def test_a_copy_is_kept_without_the_traceback_and_its_frames() -> None:
    original = raised(ValueError("boom"))
    original.__dict__["note"] = "kept"
    failures = RecentFailures()
    failures.record("m", original)
    kept = failures.get("m")
    assert type(kept) is ValueError and kept.args == ("boom",)
    assert kept.__dict__ == {"note": "kept"}
    assert original.__traceback__ is not None and kept.__traceback__ is None


def test_an_exception_that_cannot_be_rebuilt_or_none_is_not_kept() -> None:
    failures = RecentFailures()
    failures.record("rebuilt-wrong", raised(NeedsTwo(1, 2)))  # its args are one string
    failures.record("none", None)
    assert failures.get("rebuilt-wrong") is None and failures.get("none") is None

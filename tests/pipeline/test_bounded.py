"""The bounded runner, in-process: work that ends is returned or re-raised; pure-Python work past
its time is interrupted; work blocked in C is abandoned, and reported when it ends."""

from __future__ import annotations

import threading

import pytest

from reload_middleware._errors import BuildTimeout
from reload_middleware._pipeline.bounded import Stuck, run_bounded


def test_the_result_of_work_that_ends_in_time_is_returned() -> None:
    assert run_bounded(lambda: 42, 5, "test") == 42


def test_what_the_work_raises_is_raised_to_the_caller_system_exit_included() -> None:
    def exits() -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        run_bounded(exits, 5, "test")


def test_an_endless_python_loop_is_interrupted_after_the_time_limit() -> None:
    def spin() -> None:
        while True:
            pass

    with pytest.raises(BuildTimeout, match=r"did not finish within 0\.05 s and was stopped") as caught:
        run_bounded(spin, 0.05, "build")
    assert not isinstance(caught.value, Stuck)


def test_work_blocked_in_c_is_abandoned_and_reported_when_it_ends() -> None:
    blocker, late = threading.Event(), threading.Event()
    with pytest.raises(Stuck, match="cannot be interrupted") as caught:
        run_bounded(blocker.wait, 0.05, "build", on_late=late.set)
    thread = caught.value.thread
    assert thread.is_alive()
    blocker.set()  # the C call returns: the thread ends, and says so
    thread.join(10)
    assert not thread.is_alive()
    assert late.wait(5)

"""The bounded runner, in-process: work that ends is returned or re-raised; pure-Python work past
its time is interrupted; work blocked in C is abandoned, and reported when it ends."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest

from reload_middleware._errors import BuildTimeout, Interrupted
from reload_middleware._pipeline.bounded import Stuck, run_bounded


@pytest.fixture(autouse=True)
def threads_end() -> Iterator[None]:
    """Every thread a test's work ran in has ended when the test ends."""
    before = set(threading.enumerate())
    yield
    started = [thread for thread in threading.enumerate() if thread not in before]
    for thread in started:
        thread.join(5)
    assert [thread.name for thread in started if thread.is_alive()] == []


def test_the_result_of_work_that_ends_in_time_is_returned() -> None:
    assert run_bounded(lambda: 42, 5, "test") == 42


@pytest.mark.parametrize("error", [ValueError("bad module"), SystemExit(3), KeyboardInterrupt()])
def test_what_the_work_raises_is_raised_to_the_caller_system_exit_included(error: BaseException) -> None:
    def fails() -> None:
        raise error

    with pytest.raises(type(error)) as caught:
        run_bounded(fails, 5, "test")
    assert caught.value is error


def test_an_endless_python_loop_is_interrupted_after_the_time_limit_and_its_thread_ends() -> None:
    threads: list[threading.Thread] = []

    def spin() -> None:
        threads.append(threading.current_thread())
        while True:
            pass

    with pytest.raises(BuildTimeout, match=r"the build did not finish within 0\.05 s and was stopped") as caught:
        run_bounded(spin, 0.05, "build")
    assert not isinstance(caught.value, Stuck)
    assert isinstance(caught.value.__cause__, Interrupted)
    threads[0].join(5)
    assert not threads[0].is_alive()


def test_work_that_swallows_the_first_interruption_is_interrupted_again() -> None:
    def stubborn() -> None:
        with contextlib.suppress(Interrupted):  # a bare ``except:`` in the user's module
            while True:
                pass
        while True:
            pass

    with pytest.raises(BuildTimeout, match="was stopped") as caught:
        run_bounded(stubborn, 0.05, "build")
    assert not isinstance(caught.value, Stuck)


def test_an_error_raised_while_handling_the_interruption_still_counts_as_the_time_limit() -> None:
    def cleans_up_badly() -> None:
        try:
            while True:
                pass
        except Interrupted as exc:
            raise RuntimeError("cleanup failed") from exc

    with pytest.raises(BuildTimeout, match="was stopped") as caught:
        run_bounded(cleans_up_badly, 0.05, "build")
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_work_blocked_in_c_is_abandoned_with_its_stack_and_reported_when_it_ends() -> None:
    # A lock acquired without a timeout blocks in C: the asynchronous exception waits for the
    # next bytecode, which comes only once the test lets the wait return (``time.sleep`` alike).
    release, late = threading.Event(), threading.Event()

    def blocked_in_c() -> None:
        release.wait()

    with pytest.raises(Stuck, match="cannot be interrupted") as caught:
        run_bounded(blocked_in_c, 0.05, "build", on_late=late.set)
    assert "blocked_in_c" in str(caught.value)  # where it is stuck, for the user
    thread = caught.value.thread
    assert thread.is_alive()
    assert not late.is_set()
    release.set()  # the C call returns: the thread ends, and says so
    thread.join(5)
    assert not thread.is_alive()
    assert late.wait(5)


def test_work_without_an_on_late_callback_is_abandoned_all_the_same() -> None:
    release = threading.Event()
    with pytest.raises(Stuck) as caught:
        run_bounded(release.wait, 0.05, "warm-up")
    assert caught.value.thread.name == "reload-middleware-warm-up"
    release.set()
    caught.value.thread.join(5)
    assert not caught.value.thread.is_alive()

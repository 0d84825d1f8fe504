"""Reload attempts and the gate, in-process: merged while queued, run one at a time, and the
requests held back released at the swap or after their own time limit."""

from __future__ import annotations

import threading

import pytest
from harness import wait_until

from reload_middleware._errors import Outcome
from reload_middleware._pipeline.queue import Attempt, AttemptQueue, Closed


def test_attempts_asked_for_while_one_is_queued_are_merged_and_widen_it() -> None:
    queue = AttemptQueue(gated=True)
    first = queue.put(sweep=True)
    second = queue.put(force=True)
    assert second is first
    assert (first.force, first.sweep) == (True, True)


def test_only_a_gated_queue_holds_requests_back() -> None:
    gated, manual = AttemptQueue(gated=True), AttemptQueue(gated=False)
    attempt = gated.put()
    manual.put()
    assert gated.gate is attempt
    assert manual.gate is None


def test_taking_an_attempt_makes_it_the_running_one_and_empties_the_queue() -> None:
    queue = AttemptQueue(gated=True)
    attempt = queue.put()
    with queue.condition:
        assert queue.take() is attempt
        assert queue.take() is None
    assert queue.running is attempt
    assert queue.put() is not attempt  # a new request while it runs is a new attempt


def test_opening_the_gate_passes_it_to_the_next_queued_attempt() -> None:
    queue = AttemptQueue(gated=True)
    running = queue.put()
    with queue.condition:
        queue.take()
    queued = queue.put()
    queue.open_gate(running)
    assert queue.gate is queued
    with queue.condition:
        queue.take()
    queue.open_gate(queued)  # nothing queued behind it
    assert queue.gate is None


def held_request(attempt: Attempt, went: threading.Event) -> threading.Thread:
    """A request thread held back by ``attempt``; ``went`` is set once it goes on."""

    def request() -> None:
        attempt.hold(timeout=10)
        went.set()

    thread = threading.Thread(target=request)
    thread.start()
    wait_until(lambda: attempt.waiting == 1, timeout=5, interval=0.001)
    return thread


def test_a_held_request_is_counted_and_goes_when_the_gate_opens() -> None:
    queue = AttemptQueue(gated=True)
    attempt = queue.put()
    went = threading.Event()
    thread = held_request(attempt, went)
    try:
        assert not went.is_set()
        queue.open_gate(attempt)
        assert went.wait(5)
    finally:
        attempt.release()
        thread.join(5)
    assert not thread.is_alive()
    assert attempt.waiting == 0
    assert attempt.wait(timeout=0) is None  # released at the swap, not finished yet


def test_a_failed_attempt_releases_the_requests_it_held_back() -> None:
    queue = AttemptQueue(gated=True)
    attempt = queue.put()
    with queue.condition:
        queue.take()
    went = threading.Event()
    thread = held_request(attempt, went)
    try:
        queue.done(attempt, Outcome(False, 1))
        assert went.wait(5)
    finally:
        attempt.release()
        thread.join(5)
    assert not thread.is_alive()
    assert queue.gate is None


def test_a_held_request_goes_after_its_own_time_limit_without_a_release() -> None:
    attempt = AttemptQueue(gated=True).put()
    attempt.hold(timeout=0.05)
    assert attempt.waiting == 0
    assert attempt.wait(timeout=0.01) is None  # no outcome yet


def test_a_finished_attempt_hands_its_outcome_to_whoever_waits() -> None:
    queue = AttemptQueue(gated=True)
    attempt = queue.put()
    with queue.condition:
        queue.take()
    outcome = Outcome(True, 2, ("pkg.leaf",), 12.5)
    queue.done(attempt, outcome)
    assert attempt.wait(timeout=1) is outcome
    assert queue.running is None
    assert queue.gate is None


def test_a_closed_queue_ends_its_worker_and_a_reopened_one_does_not() -> None:
    queue = AttemptQueue(gated=False)
    queue.close()
    with queue.condition, pytest.raises(Closed):
        queue.take()
    queue.reopen()
    with queue.condition:
        assert queue.take() is None

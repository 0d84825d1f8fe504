"""Reload attempts: asked for by the watcher, a ``POST`` or another worker process, merged while
one is queued, run one at a time; and the gate new requests wait at in watch mode.

The gate is an attribute every request reads (no call, no lock): the attempt a request must wait
for, or ``None``. A request that finds an attempt there waits until that attempt *releases* it,
at the swap (or when it fails): not until the checks that follow a swap.
"""

from __future__ import annotations

import threading
import time

from .._errors import Outcome


class Closed(Exception):
    """The queue was closed: the worker thread ends."""


class Attempt:
    """One reload attempt, queued or running; anyone may wait for its outcome, and a request held
    back by it (``hold``) until the version it must be served by is serving."""

    def __init__(self, *, force: bool, sweep: bool) -> None:
        self.force = force
        self.sweep = sweep
        self.requested = time.perf_counter()
        self.outcome: Outcome | None = None
        self.waiting = 0  # requests in ``hold``
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._done = threading.Event()

    def release(self) -> None:
        """The requests held back may go: the new version serves, or the old one serves on."""
        self._released.set()

    def finish(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self._released.set()
        self._done.set()

    def hold(self, timeout: float) -> None:
        """A request waits here until ``release`` (at most ``timeout``): the swap, not the checks
        that follow it."""
        with self._lock:
            self.waiting += 1
        try:
            self._released.wait(timeout)
        finally:
            with self._lock:
                self.waiting -= 1

    def wait(self, timeout: float | None = None) -> Outcome | None:
        """The outcome, or ``None`` if ``timeout`` ran out first."""
        self._done.wait(timeout)
        return self.outcome


class AttemptQueue:
    """At most one attempt queued and one running. ``gated`` (watch mode): new requests wait for
    the queued or running attempt; in manual mode they never wait, the old version serves on."""

    def __init__(self, *, gated: bool) -> None:
        self.condition = threading.Condition()
        self.gate: Attempt | None = None  # read by every request
        self.running: Attempt | None = None
        self._gated = gated
        self._queued: Attempt | None = None
        self._closed = False

    def put(self, *, force: bool = False, sweep: bool = False) -> Attempt:
        """Queue an attempt, or widen the one already queued; returns it, to wait on."""
        with self.condition:
            attempt = self._queued
            if attempt is None:
                attempt = self._queued = Attempt(force=force, sweep=sweep)
            else:
                attempt.force |= force
                attempt.sweep |= sweep
            if self._gated:
                self.gate = attempt
            self.condition.notify_all()
        return attempt

    def poke(self) -> None:
        """Wake the worker: something besides an attempt needs it (files read at run time)."""
        with self.condition:
            self.condition.notify_all()

    def take(self) -> Attempt | None:
        """Under ``condition``: the queued attempt, now running, or ``None`` when nothing is
        queued. Raises ``Closed`` once the queue is closed."""
        if self._closed:
            raise Closed
        attempt = self._queued
        if attempt is not None:
            self._queued, self.running = None, attempt
        return attempt

    def open_gate(self, attempt: Attempt) -> None:
        """``attempt`` holds no request back any more: the gate passes to the next queued one."""
        with self.condition:
            if self.gate is attempt:
                self.gate = self._queued
        attempt.release()

    def done(self, attempt: Attempt, outcome: Outcome) -> None:
        with self.condition:
            self.running = None
        self.open_gate(attempt)
        attempt.finish(outcome)

    def close(self) -> None:
        """The worker ends when it next looks."""
        with self.condition:
            self._closed = True
            self.condition.notify_all()

    def reopen(self) -> None:
        with self.condition:
            self._closed = False

    def after_fork(self) -> None:
        """In a forked child the parent's lock may be held by a thread that does not exist here."""
        self.condition = threading.Condition()

"""The pipeline's threads: the worker, which runs every reload attempt and every retirement one at
a time, and the watcher, which notices edits.

Both hold the pipeline only weakly: a middleware nobody uses any more (a test's ``TestClient``,
never entered) is collected, and then its threads stop. A server that imports the app and then
forks its workers (``gunicorn --preload``) leaves our threads behind in the parent: each child
starts its own on its first request.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from .._threads import own_thread
from .._watch import Watcher
from .leaks import LeakTracker
from .queue import Attempt, AttemptQueue, Closed
from .server_logging import follow_server_logging

T = TypeVar("T")
WORKER_THREAD = "reload-middleware-pipeline"


class Workload(Protocol):
    """What the worker thread does, on the object that owns it (held weakly)."""

    def tend(self) -> None: ...

    def idle_wait(self) -> float | None: ...

    def run(self, attempt: Attempt) -> None: ...


class Worker:
    """Starts the worker and watcher threads (once; again after ``close()``, or in a forked child)."""

    def __init__(
        self,
        owner: Workload,
        queue: AttemptQueue,
        make_watcher: Callable[[], Watcher],
        leaks: LeakTracker,
        on_start: Callable[[], object],
    ) -> None:
        self.started = False  # read by every request
        self._owner = weakref.ref(owner)
        self._queue = queue
        self._make_watcher = make_watcher
        self._on_start = on_start
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._handles = _Handles(queue, leaks)
        weakref.finalize(owner, self._handles.stop)
        forget = weakref.WeakMethod(self._after_fork)
        os.register_at_fork(after_in_child=lambda: (method := forget()) is not None and method())

    @property
    def watcher(self) -> Watcher | None:
        return self._handles.watcher

    def start(self) -> None:
        with self._lock:
            if self.started:
                return
            follow_server_logging()  # by now the server has set its logging up
            self._on_start()
            self._queue.reopen()
            self._thread = own_thread(_work, WORKER_THREAD, args=(self._owner, self._queue))
            self._thread.start()
            self._watch()
            self.started = True

    def close(self) -> None:
        """Stop the watcher and the worker (the server is stopping)."""
        with self._lock:
            thread = self._thread
            self.started = False
        self._queue.close()
        self._handles.stop(watcher_timeout=5.0)
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)

    def rewatch(self) -> None:
        """The watched directories resolve elsewhere now (a release switch): watch the new ones."""
        with self._lock:
            old, self._handles.watcher = self._handles.watcher, None
        if old is not None:
            old.stop()
        with self._lock:
            if self.started and self._handles.watcher is None:
                self._watch()

    def _watch(self) -> None:
        watcher = self._make_watcher()
        self._handles.watcher = watcher
        watcher.start()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._queue.after_fork()
        self._handles.watcher = None
        self._thread = None
        self.started = False


def _work(ref: weakref.ReferenceType[Workload], queue: AttemptQueue) -> None:
    """The worker thread: every attempt and every retirement, one at a time. It holds its owner
    only while it works, never while it waits."""
    while True:
        owner = ref()
        if owner is None:
            return
        owner.tend()
        condition = queue.condition
        with condition:
            try:
                attempt = queue.take()
            except Closed:
                return
            if attempt is None:
                wait = owner.idle_wait()
                del owner
                condition.wait(wait)
                continue
        owner.run(attempt)
        del owner


class _Handles:
    """What stops a collected owner's threads, without referring to the owner."""

    def __init__(self, queue: AttemptQueue, leaks: LeakTracker) -> None:
        self.queue = queue
        self.leaks = leaks
        self.watcher: Watcher | None = None

    def stop(self, watcher_timeout: float = 0) -> None:
        """Stop the watcher (waiting for it up to ``watcher_timeout``), wake the worker so that it
        ends, and stop the leak checker."""
        if self.watcher is not None:
            self.watcher.stop(timeout=watcher_timeout)
        with self.queue.condition:
            self.queue.condition.notify_all()  # the worker wakes, finds its owner closed or gone, and ends
        self.leaks.close()


def weakly(method: Callable[..., T]) -> Callable[..., T | None]:
    """``method``, called through a weak reference to its object: ``None`` once it is gone."""
    reference = weakref.WeakMethod(method)

    def call(*args: Any, **kwargs: Any) -> T | None:
        target = reference()
        return None if target is None else target(*args, **kwargs)

    return call

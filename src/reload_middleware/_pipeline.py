"""The reload pipeline both middlewares share: plan -> build -> start -> drain -> swap -> retire.

One worker thread runs every reload attempt, one at a time, and every retirement; the middlewares
only route requests to ``versions.current`` and count them. A request in watch mode that finds
``gate`` set (a change was detected, or a reload runs) waits for that attempt, at most
``build_timeout``; in manual mode requests never wait: the old version serves until the new one
has started, then the swap is instant.

Faults stay inside an attempt: any exception at import (``SystemExit`` included) rolls the build
back; a build past ``build_timeout`` is interrupted, or abandoned if it is stuck in C; a failed
lifespan startup rolls back; a change that needs a restart is reported and blocks nothing else.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from types import ModuleType
from typing import Any, Protocol, TypeVar

from ._bounded import Stuck, run_bounded
from ._errors import BuildTimeout, ErrorReport, Outcome, RestartRequired, stale_report
from ._history import History, Laps, ReloadRecord
from ._logging import follow_server_logging
from ._reloader import Reloader
from ._retire import Retirer
from ._stale import find_stale
from ._versions import AppVersion, VersionSet
from ._watch import Watcher

logger = logging.getLogger(__name__)
T = TypeVar("T")

# While an old version drains, the worker looks at it this often (and only then: an idle server
# has no periodic wake-ups from the pipeline).
_RETIRE_POLL = 0.02
# After a swap, the requests the reload held back are answered before the stale check walks the
# app: the walk holds the interpreter lock, and the first of them came 8.9 ms after the swap
# instead of 2.4 (median of 10 leaf edits, 200 modules). The worker waits until the new version
# has computed nothing for two looks in a row (a released request is on its way from its thread
# back to the event loop for a moment), at most this long.
_SETTLE_LIMIT = 0.1
_SETTLE_POLL = 0.001


class Runtime(Protocol):
    """What only the middleware on top knows how to do with a version (ASGI: its lifespan)."""

    def start(self, version: AppVersion) -> None: ...

    def warm_up(self, version: AppVersion, timeout: float) -> None: ...

    def stop(self, version: AppVersion) -> None: ...

    def adapt(self, app: Any) -> Any: ...


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


class Pipeline:
    """Reload attempts and version lifecycle for one middleware."""

    def __init__(self, reloader: Reloader, runtime: Runtime, make_header: Callable[[int], Any]) -> None:
        self.reloader = reloader
        self.config = reloader.config
        self.runtime = runtime
        self._make_header = make_header
        first = AppVersion(1, runtime.adapt(reloader.app), make_header(1))
        first.exit_callbacks, reloader.first_exit_callbacks = reloader.first_exit_callbacks, []
        self.versions = VersionSet(first)
        # Read by every request: the attempt a request must wait for (watch mode only), or None.
        self.gate: Attempt | None = None
        # The latest failure while it is unresolved, for the error page (when that option is on).
        self.failing: ErrorReport | None = None
        self.started = False
        self.announce: Callable[[], object] | None = None  # a line to log once serving starts
        self.history = History()
        self._retirer = Retirer(self.versions, runtime, reloader.leaks, self.config)
        self._condition = threading.Condition()
        self._queued: Attempt | None = None
        self._running: Attempt | None = None
        self._closed = False
        self._worker: threading.Thread | None = None
        self._watcher: Watcher | None = None
        self._stuck: Stuck | None = None
        # Our threads hold this pipeline only weakly: a middleware nobody uses any more (a test's
        # TestClient, never entered) is collected, and then its threads stop.
        self._handles = _Handles(self._condition, reloader.leaks)
        weakref.finalize(self, self._handles.stop)
        # A server that imports the app and then forks its workers (gunicorn --preload) leaves
        # our threads behind in the parent: each child starts its own on its first request.
        forget = weakref.WeakMethod(self._after_fork)
        os.register_at_fork(after_in_child=lambda: (method := forget()) is not None and method())

    @property
    def watcher(self) -> Watcher | None:
        return self._watcher

    @property
    def reloading(self) -> bool:
        return self._running is not None

    # -- threads ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker and the watcher (once; again after ``close()``)."""
        with self._condition:
            if self.started:
                return
            follow_server_logging()  # by now the server has set its logging up
            if self.announce is not None:
                self.announce()
                self.announce = None
            self._closed = False
            self._worker = threading.Thread(
                target=_work, args=(weakref.ref(self),), name="reload-middleware-pipeline", daemon=True
            )
            self._worker.start()
            self._watch()
            self.started = True

    def close(self) -> None:
        """Stop the watcher and the worker (the server is stopping); the trigger file goes too."""
        with self._condition:
            worker = self._worker
            self._closed = True
            self.started = False
        self._handles.stop(watcher_timeout=5.0)
        if worker is not None and worker is not threading.current_thread():
            worker.join(10)
        self.reloader.trigger.remove()

    def _rewatch(self) -> None:
        """The watched directories resolve elsewhere now (a release switch): watch the new ones."""
        with self._condition:
            old, self._watcher = self._watcher, None
        if old is not None:
            old.stop()
        with self._condition:
            if self.started and self._watcher is None:
                self._watch()

    def _watch(self) -> None:
        self._watcher = self.reloader.watcher(_weakly(self.request), _weakly(self._on_trigger))
        self._handles.watcher = self._watcher
        self._watcher.start()

    def _after_fork(self) -> None:
        self._condition = self._handles.condition = threading.Condition()
        self._worker = self._watcher = self._handles.watcher = None
        self.started = False

    def _on_trigger(self) -> None:
        signal = self.reloader.trigger.take()
        if signal is not None:
            logger.info("another worker asked for a reload%s", " of everything" if signal.force else "")
            self.request(force=signal.force, sweep=True)

    # -- attempts --------------------------------------------------------------------------------

    def request(self, *, force: bool = False, sweep: bool = False) -> Attempt:
        """Ask for a reload attempt (merged with one already queued); returns it, to wait on."""
        with self._condition:
            attempt = self._queued
            if attempt is None:
                attempt = self._queued = Attempt(force=force, sweep=sweep)
            else:
                attempt.force |= force
                attempt.sweep |= sweep
            if self.config.watch:
                self.gate = attempt
            self._condition.notify_all()
        if not self.started:
            self.start()
        return attempt

    def _next(self) -> Attempt | float | None:
        """Under the condition: the queued attempt to run, else how long to wait (``None``: until
        notified); raises ``_Closed`` once the pipeline is closed."""
        if self._closed:
            raise _Closed
        attempt = self._queued
        if attempt is None:
            return _RETIRE_POLL if self.versions.draining() else None
        self._queued, self._running = None, attempt
        return attempt

    def _run(self, attempt: Attempt) -> None:
        started = time.perf_counter()
        with _CollectionPause() as pause:
            try:
                outcome = self._attempt(attempt, started, pause)
            except BaseException as exc:  # a reload never ends the worker, whatever it raised
                self.reloader.abort()
                outcome = self._failed(exc, started)
        with self._condition:
            self._running = None
        self._open_gate(attempt)
        attempt.finish(outcome)
        if self.reloader.dirs.moved:
            self._rewatch()

    def _attempt(self, attempt: Attempt, started: float, pause: _CollectionPause) -> Outcome:
        self._check_not_stuck()
        self._retirer.make_room()
        reloader = self.reloader
        lap = Laps(started)
        plan = reloader.plan(force=attempt.force, sweep=attempt.sweep)
        lap("plan")
        if plan is None:
            return Outcome(True, self.versions.current.number)
        self.history.restart_required = plan.restart_required
        if not plan.group:
            raise RestartRequired("; ".join(plan.restart_required))
        load = reloader.begin(plan)
        try:
            loaded = run_bounded(
                lambda: reloader.build(plan, load), self.config.build_timeout, "build", on_late=load.restore
            )
        except Stuck as exc:
            load.restore()  # now, for the old version; and again by on_late if the thread ever ends
            self._stuck = exc
            raise
        lap("build")
        number = self.versions.current.number + 1
        version = AppVersion(number, self.runtime.adapt(loaded.app), self._make_header(number))
        version.exit_callbacks = loaded.exit_callbacks
        try:
            self.runtime.start(version)
            lap("start")
            if self.config.warmup:
                self.runtime.warm_up(version, self.config.build_timeout)
                lap("warm_up")
        except BaseException:
            loaded.rollback()
            with contextlib.suppress(Exception):
                self.runtime.stop(version)  # if its lifespan had started
            raise
        reloader.commit(plan, loaded)
        lap("commit")
        old = self.versions.current
        if self.config.watch and not self.config.overlap:
            self._drain(old)
            lap("drain")
        record = ReloadRecord(
            modules=tuple(sorted(loaded.new_modules)),
            changed=tuple(sorted(plan.changed_modules)),
            duration_ms=(time.perf_counter() - started) * 1000,
            version=number,
            phases={"queued": (started - attempt.requested) * 1000, **lap.ms},
        )
        # Recorded just before the swap: a client served by the new version finds it in the status.
        self.failing = None
        self.history.succeeded(record)
        self.versions.swap(version, loaded.old_modules, self.config.retire_timeout)
        self._open_gate(attempt)  # the new version serves: what follows holds no request back
        _settle(attempt, version)
        pause.end()
        checking = time.perf_counter()
        stale = self._stale_report(record, loaded.app, plan.group, loaded.old_modules)
        record.phases["stale_check"] = (time.perf_counter() - checking) * 1000
        if stale is not None:
            return Outcome(False, number, record.modules, record.duration_ms, stale, plan.restart_required)
        self.history.log_success(record)
        return Outcome(True, number, record.modules, record.duration_ms, None, plan.restart_required)

    def _stale_report(
        self, record: ReloadRecord, app: Any, group: frozenset[str], replaced: dict[str, ModuleType]
    ) -> ErrorReport | None:
        """Guarantee 7: a reload whose app still reaches old code is reported as stale, not as ok.
        The old version retires first if it can: its ``on_retire`` hooks undo its registrations."""
        self._retirer.retire_ready()
        graph = self.reloader.graph
        unchanged = {
            name: sys.modules[name]
            for name, tracked in graph.modules.items()
            if tracked.reloadable and name not in group and name in sys.modules
        }
        try:
            chain = find_stale(app, unchanged, replaced, graph.modules.__contains__)
        except Exception:  # a fault of the check itself must not turn a good reload into a failure
            logger.exception("could not check version %d for stale code", record.version)
            return None
        if chain is None:
            return None
        report = stale_report(chain)
        self.history.stale(record, report)
        if self.config.error_page:
            self.failing = report
        return report

    def _open_gate(self, attempt: Attempt) -> None:
        with self._condition:
            if self.gate is attempt:
                self.gate = self._queued
        attempt.release()

    def _check_not_stuck(self) -> None:
        if self._stuck is not None:
            if self._stuck.thread.is_alive():
                raise BuildTimeout(
                    f"an earlier reload is still stuck, no other can run: restart the server. {self._stuck}"
                )
            self._stuck = None

    def _drain(self, version: AppVersion) -> None:
        """New requests wait at the gate while the server finishes computing ``version``'s."""
        if not version.wait_computed(self.config.drain_timeout):
            logger.warning(
                "version %d still computed %d request(s) after %g s (drain_timeout); swapping anyway",
                version.number,
                version.computing,
                self.config.drain_timeout,
            )

    def _failed(self, exc: BaseException, started: float) -> Outcome:
        report = self.reloader.report(exc)
        number = self.versions.current.number
        self.history.failed(exc, report, number)
        if self.config.error_page:
            self.failing = report
        return Outcome(False, number, (), (time.perf_counter() - started) * 1000, report)


class _Closed(Exception):
    pass


class _CollectionPause:
    """Automatic garbage collection paused from a reload's start until the requests it held back
    are answered: a full collection (67-89 ms in a 200-module app, measured) landed in the build
    or the warm-up of every third or so reload of a 194-module group, doubling its save-to-serve.
    The collection it puts off runs after that, off the critical path. Collection stays off if
    the app turned it off."""

    def __init__(self) -> None:
        self._resume = False

    def __enter__(self) -> _CollectionPause:
        self._resume = gc.isenabled()
        gc.disable()
        return self

    def end(self) -> None:
        if self._resume:
            self._resume = False
            gc.enable()

    def __exit__(self, *exc_info: object) -> None:
        self.end()


def _settle(attempt: Attempt, version: AppVersion) -> None:
    """Wait (at most ``_SETTLE_LIMIT``) until the requests ``attempt`` held back have been answered."""
    deadline = time.monotonic() + _SETTLE_LIMIT
    quiet = 0
    while quiet < 2 and time.monotonic() < deadline:
        quiet = quiet + 1 if attempt.waiting == 0 and version.computing == 0 else 0
        if quiet < 2:
            time.sleep(_SETTLE_POLL)


def _work(ref: weakref.ReferenceType[Pipeline]) -> None:
    """The worker thread: every attempt and every retirement, one at a time. It holds the
    pipeline only while it works on it, never while it waits."""
    while True:
        pipeline = ref()
        if pipeline is None:
            return
        pipeline._retirer.retire_ready()
        condition = pipeline._condition
        with condition:
            try:
                step = pipeline._next()
            except _Closed:
                return
            if not isinstance(step, Attempt):
                del pipeline
                condition.wait(step)
                continue
        pipeline._run(step)
        del pipeline


class _Handles:
    """What stops a collected pipeline's threads, without referring to the pipeline."""

    def __init__(self, condition: threading.Condition, leaks: Any) -> None:
        self.condition = condition
        self.leaks = leaks
        self.watcher: Watcher | None = None

    def stop(self, watcher_timeout: float = 0) -> None:
        """Stop the watcher (waiting for it up to ``watcher_timeout``), wake the worker so that it
        ends, and stop the leak checker."""
        if self.watcher is not None:
            self.watcher.stop(timeout=watcher_timeout)
        with self.condition:
            self.condition.notify_all()  # the worker wakes, finds the pipeline closed or gone, and ends
        self.leaks.close()


def _weakly(method: Callable[..., T]) -> Callable[..., T | None]:
    """``method``, called through a weak reference to its object: ``None`` once it is gone."""
    reference = weakref.WeakMethod(method)

    def call(*args: Any, **kwargs: Any) -> T | None:
        target = reference()
        return None if target is None else target(*args, **kwargs)

    return call

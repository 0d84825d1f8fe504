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

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ._bounded import Stuck, run_bounded
from ._errors import BuildTimeout, ErrorReport, Outcome, RestartRequired
from ._logging import follow_server_logging
from ._reloader import Reloader
from ._retire import retire_modules
from ._versions import AppVersion, VersionSet
from ._watch import Watcher

logger = logging.getLogger(__name__)

# While an old version drains, the worker looks at it this often (and only then: an idle server
# has no periodic wake-ups from the pipeline).
_DRAIN_POLL = 0.001
_RETIRE_POLL = 0.02
# When max_versions is reached, how long the oldest version's connections get to close.
_EVICT_WAIT = 1.0


class Runtime(Protocol):
    """What only the middleware on top knows how to do with a version (ASGI: its lifespan)."""

    def start(self, version: AppVersion) -> None: ...

    def warm_up(self, version: AppVersion, timeout: float) -> None: ...

    def stop(self, version: AppVersion) -> None: ...


class Attempt:
    """One reload attempt, queued or running; anyone may wait for its outcome."""

    def __init__(self, *, force: bool, sweep: bool) -> None:
        self.force = force
        self.sweep = sweep
        self.outcome: Outcome | None = None
        self._done = threading.Event()

    def finish(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self._done.set()

    def wait(self, timeout: float | None = None) -> Outcome | None:
        """The outcome, or ``None`` if ``timeout`` ran out first."""
        self._done.wait(timeout)
        return self.outcome


@dataclass
class Stats:
    reloads: int = 0
    failures: int = 0
    last_reload: dict[str, Any] | None = None
    last_error: ErrorReport | None = None
    resolved: bool = False  # a later reload succeeded after last_error
    restart_required: tuple[str, ...] = ()


class Pipeline:
    """Reload attempts and version lifecycle for one middleware."""

    def __init__(self, reloader: Reloader, runtime: Runtime, make_header: Callable[[int], Any]) -> None:
        self.reloader = reloader
        self.config = reloader.config
        self.runtime = runtime
        self._make_header = make_header
        self.versions = VersionSet(AppVersion(1, reloader.app, make_header(1)))
        # Read by every request: the attempt a request must wait for (watch mode only), or None.
        self.gate: Attempt | None = None
        # The latest failure while it is unresolved, for the error page (when that option is on).
        self.failing: ErrorReport | None = None
        self.started = False
        self.stats = Stats()
        self._condition = threading.Condition()
        self._queued: Attempt | None = None
        self._running: Attempt | None = None
        self._closed = False
        self._worker: threading.Thread | None = None
        self._watcher: Watcher | None = None
        self._stuck: Stuck | None = None
        # A server that imports the app and then forks its workers (gunicorn --preload) leaves
        # our threads behind in the parent: each child starts its own on its first request.
        forget = weakref.WeakMethod(self._after_fork)
        os.register_at_fork(after_in_child=lambda: (method := forget()) is not None and method())

    # -- threads ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker and the watcher (once; again after ``close()``)."""
        with self._condition:
            if self.started:
                return
            follow_server_logging()  # by now the server has set its logging up
            self._closed = False
            self._worker = threading.Thread(target=self._work, name="reload-middleware-pipeline", daemon=True)
            self._worker.start()
            self._watcher = self.reloader.watcher(self.request, self._on_trigger)
            self._watcher.start()
            self.started = True

    def close(self) -> None:
        """Stop the watcher and the worker (the server is stopping); the trigger file goes too."""
        with self._condition:
            watcher, worker = self._watcher, self._worker
            self._closed = True
            self.started = False
            self._condition.notify_all()
        if watcher is not None:
            watcher.stop()
        if worker is not None and worker is not threading.current_thread():
            worker.join(10)
        self.reloader.leaks.close()
        self.reloader.trigger.remove()

    def _after_fork(self) -> None:
        self._condition = threading.Condition()
        self._worker = self._watcher = None
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

    def _work(self) -> None:
        while True:
            self._retire_ready()
            with self._condition:
                if self._closed:
                    return
                attempt = self._queued
                if attempt is None:
                    self._condition.wait(_RETIRE_POLL if self.versions.draining() else None)
                    continue
                self._queued, self._running = None, attempt
            started = time.perf_counter()
            try:
                outcome = self._attempt(attempt, started)
            except BaseException as exc:  # a reload never ends the worker, whatever it raised
                self.reloader.abort()
                outcome = self._failed(exc, started)
            with self._condition:
                self._running = None
                if self.gate is attempt:
                    self.gate = self._queued
            attempt.finish(outcome)

    def _attempt(self, attempt: Attempt, started: float) -> Outcome:
        self._check_not_stuck()
        self._make_room()
        reloader = self.reloader
        plan = reloader.plan(force=attempt.force, sweep=attempt.sweep)
        if plan is None:
            return Outcome(True, self.versions.current.number)
        self.stats.restart_required = plan.restart_required
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
        number = self.versions.current.number + 1
        version = AppVersion(number, loaded.app, self._make_header(number))
        try:
            self.runtime.start(version)
        except BaseException:
            loaded.rollback()
            raise
        if self.config.warmup:
            self.runtime.warm_up(version, self.config.build_timeout)
        reloader.commit(plan, loaded)
        old = self.versions.current
        if self.config.watch and not self.config.overlap:
            self._drain(old)
        self.versions.swap(version, loaded.old_modules, self.config.retire_timeout)
        duration = (time.perf_counter() - started) * 1000
        modules = tuple(sorted(loaded.new_modules))
        self._succeeded(plan.changed_modules, modules, duration, number)
        return Outcome(True, number, modules, duration, None, plan.restart_required)

    def _check_not_stuck(self) -> None:
        if self._stuck is not None:
            if self._stuck.thread.is_alive():
                raise BuildTimeout(
                    f"an earlier reload is still stuck, no other can run: restart the server. {self._stuck}"
                )
            self._stuck = None

    def _drain(self, version: AppVersion) -> None:
        """Wait until the server computes no request on ``version`` (new ones wait at the gate)."""
        deadline = time.monotonic() + self.config.drain_timeout
        while version.computing > 0:
            if time.monotonic() >= deadline:
                logger.warning(
                    "version %d still computed %d request(s) after %g s (drain_timeout); swapping anyway",
                    version.number,
                    version.computing,
                    self.config.drain_timeout,
                )
                return
            time.sleep(_DRAIN_POLL)

    def _make_room(self) -> None:
        """At ``max_versions``, the oldest draining version goes now: its long-lived connections
        (websockets, streams) are closed rather than holding every later reload back."""
        while len(self.versions.live) >= self.config.max_versions:
            draining = self.versions.draining()
            if not draining:
                return
            oldest = draining[0]
            closed = oldest.close_connections()
            logger.warning(
                "%d versions are live (max_versions=%d): closing the %d long-lived connection(s) of version %d",
                len(self.versions.live),
                self.config.max_versions,
                closed,
                oldest.number,
            )
            deadline = time.monotonic() + _EVICT_WAIT
            while oldest.in_flight and time.monotonic() < deadline:
                time.sleep(_RETIRE_POLL)
            self._retire(oldest)

    # -- retirement ------------------------------------------------------------------------------

    def _retire_ready(self) -> None:
        now = time.monotonic()
        for version in self.versions.draining():
            if version.in_flight == 0:
                self._retire(version)
            elif version.retire_by is not None and now >= version.retire_by:
                logger.warning(
                    "version %d still has %d connection(s) after %g s (retire_timeout): closing them",
                    version.number,
                    version.in_flight,
                    self.config.retire_timeout,
                )
                version.close_connections()
                self._retire(version)

    def _retire(self, version: AppVersion) -> None:
        """Stop the version's lifespan, then retire its modules (hooks, caches, leak check)."""
        try:
            self.runtime.stop(version)
        except Exception:
            logger.exception("lifespan shutdown of retired version %d failed", version.number)
        self.versions.remove(version)
        replaced, version.replaced = version.replaced, {}
        retire_modules(version.number, replaced, self.reloader.leaks)
        version.app = version.state = version.lifespan = None  # let the old module graph go
        logger.info("version %d retired", version.number)

    # -- outcomes --------------------------------------------------------------------------------

    def _succeeded(self, changed: frozenset[str], modules: tuple[str, ...], duration: float, number: int) -> None:
        stats = self.stats
        stats.reloads += 1
        stats.last_reload = {
            "modules": list(modules),
            "changed": sorted(changed),
            "duration_ms": round(duration, 3),
            "time": time.time(),
            "version": number,
        }
        stats.resolved = stats.last_error is not None
        self.failing = None
        logger.info(
            "Reloaded %s: %d module(s) in %.1f ms, now serving version %d",
            ", ".join(sorted(changed)) or "everything (forced)",
            len(modules),
            duration,
            number,
        )
        for reason in self.stats.restart_required:
            logger.warning("Restart required: %s", reason)

    def _failed(self, exc: BaseException, started: float) -> Outcome:
        report = self.reloader.report(exc)
        self.stats.failures += 1
        self.stats.last_error = report
        self.stats.resolved = False
        if self.config.error_page:
            self.failing = report
        number = self.versions.current.number
        where = f" at {report.file}:{report.line}" if report.file else ""
        log = logger.warning if isinstance(exc, RestartRequired) else logger.error
        log(
            "Reload failed, the old version keeps serving: %s: %s%s (version %d)\n%s",
            report.type,
            report.message,
            where,
            number,
            report.traceback.rstrip(),
        )
        return Outcome(False, number, (), (time.perf_counter() - started) * 1000, report)

    def status(self) -> dict[str, Any]:
        """The admin endpoint's status JSON."""
        stats, watcher = self.stats, self._watcher
        listening = watcher is not None and watcher.running
        last_error = stats.last_error
        return {
            "version": self.versions.current.number,
            "reloads": stats.reloads,
            "failures": stats.failures,
            "reloading": self._running is not None,
            "last_reload": stats.last_reload,
            "last_error": {**last_error.as_dict(), "resolved": stats.resolved} if last_error else None,
            "restart_required": list(stats.restart_required),
            "tracked_modules": len(self.reloader.graph.modules),
            "watching": self.config.watch and listening,
            "watcher": watcher.describe() if watcher is not None else None,
            "limits": {
                "build_timeout": self.config.build_timeout,
                "drain_timeout": self.config.drain_timeout,
                "max_versions": self.config.max_versions,
            },
            "process": {
                "pid": os.getpid(),
                "shared_trigger": str(self.reloader.trigger.path),
                "listening": listening,
            },
            "versions": self.versions.describe(),
            "leaked_versions": self.reloader.leaks.leaked,
        }

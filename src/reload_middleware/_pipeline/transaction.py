"""One reload attempt, as a transaction: plan -> build -> start -> warm -> commit -> drain -> swap ->
settle -> check. Until the commit every step can be undone exactly; after the swap, the outcome is
only a success if the new version reaches no code of the replaced modules.

Faults stay inside an attempt: any exception at import (``SystemExit`` included) rolls the build
back; a build past ``build_timeout`` is interrupted, or abandoned if it is stuck in C; a failed
lifespan startup rolls back; a change that needs a restart is reported and blocks nothing else.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any, Protocol

from .. import adapters
from .._config import Config
from .._engine import GroupLoad, build_group
from .._errors import BuildTimeout, ErrorReport, Outcome, RestartRequired, old_code_report, stale_report
from .bounded import Stuck, run_bounded
from .history import History, Laps, ReloadRecord
from .oldcode import OldCode
from .project import Project
from .queue import Attempt
from .retire import Retirer
from .stale import find_stale
from .versions import AppVersion, Stopping, VersionSet

logger = logging.getLogger(__name__)

# After a swap, the requests the reload held back are answered before the stale check walks the
# app: the walk holds the interpreter lock, and the first of them came 8.9 ms after the swap
# instead of 2.4 (median of 10 leaf edits, 200 modules). The worker waits until the new version
# has computed nothing for two looks in a row (a released request is on its way from its thread
# back to the event loop for a moment), at most this long.
_SETTLE_LIMIT = 0.1
# How long a reload's answer waits for the replaced version's lifespan shutdown, so that what its
# retirement stops (threads, schedulers) is stopped by the time the answer says ok; a longer one
# finishes later, and its version retires then.
_SHUTDOWN_WAIT = 1.0
_SETTLE_POLL = 0.001


class Runtime(Protocol):
    """What only the middleware on top knows how to do with a version (ASGI: its lifespan)."""

    def start(self, version: AppVersion, timeout: float) -> None: ...

    def warm_up(self, version: AppVersion, timeout: float) -> None: ...

    def stop(self, version: AppVersion) -> None: ...

    def stop_soon(self, version: AppVersion) -> Stopping: ...

    def adapt(self, app: Any) -> Any: ...


class NoLifespan:
    """The runtime of apps without lifespan or lazy set-up worth a warm-up (WSGI): nothing to do."""

    def start(self, version: AppVersion, timeout: float) -> None:
        pass

    def warm_up(self, version: AppVersion, timeout: float) -> None:
        pass

    def stop(self, version: AppVersion) -> None:
        pass

    def stop_soon(self, version: AppVersion) -> Stopping:
        return Stopping.finished()

    @staticmethod
    def adapt(app: Any) -> Any:
        return app


class Transaction:
    """Runs reload attempts (one at a time, in the pipeline's worker thread) against the versions."""

    def __init__(
        self,
        config: Config,
        project: Project,
        versions: VersionSet,
        runtime: Runtime,
        *,
        history: History,
        retirer: Retirer,
        old_code: OldCode,
        new_version: Callable[[int, Any], AppVersion],
        load_app: Callable[[], Any],
        open_gate: Callable[[Attempt], None],
    ) -> None:
        self._config = config
        self._project = project
        self._versions = versions
        self._runtime = runtime
        self._history = history
        self._retirer = retirer
        self._old_code = old_code
        self._new_version = new_version
        self._load_app = load_app
        self._open_gate = open_gate
        self._stuck: Stuck | None = None  # a build that could not be stopped, while it runs on

    def run(self, attempt: Attempt) -> Outcome:
        """The attempt's outcome; a reload never ends the worker, whatever it raised."""
        started = time.perf_counter()
        with CollectionPause() as pause:
            try:
                return self._attempt(attempt, started, pause)
            except BaseException as exc:
                self._project.abort()
                self._project.watch_failure(exc)  # a module that failed was never loaded: watch its file
                return self._failed(exc, started)

    def _attempt(self, attempt: Attempt, started: float, pause: CollectionPause) -> Outcome:
        self._check_not_stuck()
        self._retirer.make_room()
        config, project, lap = self._config, self._project, Laps(started)
        # While the app has never imported (version 0 answers with the error), every attempt
        # imports all of it: its modules' graph is only what the failed import got to see.
        plan = project.plan(force=attempt.force or self._versions.current.number == 0, sweep=attempt.sweep)
        lap("plan")
        if plan is None:
            self._history.nothing_to_reload(self._versions.current.number)
            return Outcome(True, self._versions.current.number)
        self._history.restart_required = plan.restart_required
        if not plan.group:
            raise RestartRequired("; ".join(plan.restart_required))
        old = self._versions.current
        if config.watch and not config.overlap:
            # New requests wait at the gate already; the old version's requests still computing
            # finish before the build releases the registries they may be using (an ORM's mappers,
            # a plugin manager's plugins, the logging handlers). But only for part of the gate's
            # wait: a request the server computes for longer (a long-poll, a slow handler) must not
            # keep the new version from those waiting (guarantee 1); it finishes on the old one.
            self._drain(old, config.drain_before_build)
            lap("drain")
        load = GroupLoad(plan.group, changed_paths=plan.changes)
        try:
            loaded = run_bounded(
                lambda: build_group(load, plan.group, plan.changed_modules, self._load_app),
                config.build_timeout,
                "build",
                on_late=load.restore,
            )
        except Stuck as exc:
            load.restore()  # now, for the old version; and again by on_late if the thread ever ends
            self._stuck = exc
            raise
        lap("build")
        number = self._versions.current.number + 1
        version = self._new_version(number, loaded.app)
        version.exit_callbacks = loaded.exit_callbacks
        self._start(version, loaded.rollback, lap)
        # The commit: from here on the new modules stay in sys.modules.
        adapters.committed()
        project.commit(plan, loaded)
        self._old_code.executed(loaded.new_modules.values(), loaded.module_code)
        lap("commit")
        record = ReloadRecord(
            modules=tuple(sorted(loaded.new_modules)),
            changed=tuple(sorted(plan.changed_modules)),
            duration_ms=(time.perf_counter() - started) * 1000,
            version=number,
            phases={"queued": (started - attempt.requested) * 1000, **lap.ms},
        )
        # Recorded just before the swap: a client served by the new version finds it in the status.
        self._history.succeeded(record)
        self._versions.swap(version, loaded.old_modules, config.retire_timeout)
        self._open_gate(attempt)  # the new version serves: what follows holds no request back
        _say_who_stays(old, config.retire_timeout)
        _settle(attempt, version)
        pause.end()
        stale = self._stale_report(record, loaded.app, plan.group, loaded.old_modules)
        if stale is not None:
            return Outcome(False, number, record.modules, record.duration_ms, stale, plan.restart_required)
        self._history.log_success(record)
        return Outcome(True, number, record.modules, record.duration_ms, None, plan.restart_required)

    def _start(self, version: AppVersion, rollback: Callable[[], None], lap: Laps) -> None:
        """Start the new version (its lifespan) and warm it up; on any failure, roll the build back."""
        config = self._config
        # In watch mode requests wait for this version at the gate: its startup is part of its
        # build, and a hung one must not hold the next save back for all of startup_timeout.
        limit = min(config.startup_timeout, config.build_timeout) if config.watch else config.startup_timeout
        try:
            self._runtime.start(version, limit)
            lap("start")
            if config.warmup:
                self._runtime.warm_up(version, config.build_timeout)
                lap("warm_up")
        except BaseException:
            rollback()
            with contextlib.suppress(Exception):
                self._runtime.stop(version)  # if its lifespan had started
            raise

    def _stale_report(
        self, record: ReloadRecord, app: Any, group: frozenset[str], replaced: dict[str, ModuleType]
    ) -> ErrorReport | None:
        """Guarantee 7: a reload whose app still reaches old code, or while a thread still runs
        old code, is reported as stale, not as ok. The old version retires first if it can: its
        ``on_retire`` hooks undo its registrations, and stop what it started. Each step is a
        phase of its own in the record (after the swap: not part of ``duration_ms``)."""
        self._old_code.take_cost_ms()  # a retirement between two reloads is not this one's
        lap = Laps(time.perf_counter())
        self._retirer.retire_ready(_SHUTDOWN_WAIT)
        lap("retire")
        running = self._old_code.in_threads(report=False)  # reported here, as this reload's outcome
        lap("old_code")
        # Watching the retired code is done in the retirement: counted where it belongs.
        watching = self._old_code.take_cost_ms()
        lap.ms["retire"] -= watching
        lap.ms["old_code"] += watching
        record.phases.update(lap.ms)
        if running:
            first = running[0]
            report = old_code_report([sighting.describe() for sighting in running], first.file, first.line, first.stack)
            self._history.saw_old_code(running)
            self._history.stale(record, report)
            return report
        graph = self._project.graph
        checking = time.perf_counter()
        try:
            chain = find_stale(
                app,
                self._project.unchanged_modules(group),
                replaced,
                graph.modules.__contains__,
                self._old_code.is_retired,
            )
        except Exception:  # a fault of the check itself must not turn a good reload into a failure
            logger.exception("could not check version %d for stale code", record.version)
            return None
        finally:
            record.phases["stale_check"] = (time.perf_counter() - checking) * 1000
        if chain is None:
            return None
        report = stale_report(chain)
        self._history.stale(record, report)
        return report

    def _check_not_stuck(self) -> None:
        if self._stuck is not None:
            if self._stuck.thread.is_alive():
                raise BuildTimeout(
                    f"an earlier reload is still stuck, no other can run: restart the server. {self._stuck}"
                )
            self._stuck = None

    def _drain(self, version: AppVersion, timeout: float) -> None:
        """New requests wait at the gate while the server finishes computing ``version``'s."""
        if not version.wait_computed(timeout):
            logger.info(
                "version %d still computes %d request(s) after %g s: they finish on it while the new "
                "version builds and serves",
                version.number,
                version.computing,
                timeout,
            )

    def _failed(self, exc: BaseException, started: float) -> Outcome:
        report = self._project.report(exc)
        number = self._versions.current.number
        self._history.failed(exc, report, number)
        return Outcome(False, number, (), (time.perf_counter() - started) * 1000, report)


class CollectionPause:
    """Automatic garbage collection paused from a reload's start until the requests it held back
    are answered: a full collection (67-89 ms in a 200-module app, measured) landed in the build
    or the warm-up of every third or so reload of a 194-module group, doubling its save-to-serve.
    The collection it puts off runs after that, off the critical path. Collection stays off if
    the app turned it off."""

    def __init__(self) -> None:
        self._resume = False

    def __enter__(self) -> CollectionPause:
        self._resume = gc.isenabled()
        gc.disable()
        return self

    def end(self) -> None:
        if self._resume:
            self._resume = False
            gc.enable()

    def __exit__(self, *exc_info: object) -> None:
        self.end()


def _say_who_stays(old: AppVersion, retire_timeout: float) -> None:
    """Long-lived connections (websockets, streams) stay on the old version, running its code."""
    staying = old.long_lived
    if staying:
        logger.info(
            "%d long-lived connection(s) (websockets, streams) stay on version %d, running its code, until "
            "they close (at most %g s: retire_timeout); the status lists them",
            staying,
            old.number,
            retire_timeout,
        )


def _settle(attempt: Attempt, version: AppVersion) -> None:
    """Wait (at most ``_SETTLE_LIMIT``) until the requests ``attempt`` held back have been answered."""
    deadline = time.monotonic() + _SETTLE_LIMIT
    quiet = 0
    while quiet < 2 and time.monotonic() < deadline:
        quiet = quiet + 1 if attempt.waiting == 0 and version.computing == 0 else 0
        if quiet < 2:
            time.sleep(_SETTLE_POLL)

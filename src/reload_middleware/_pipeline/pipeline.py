"""The reload pipeline both middlewares share: detect -> plan -> build -> start -> drain -> swap -> retire.

``Pipeline`` composes the parts and is all the middlewares and the admin endpoint see of them:
the versions (requests go to ``versions.current``), the queue (its ``gate``), the history (its
``failing``), the worker (``started``), ``request()`` a reload, and ``status()``. A request in
watch mode that finds the gate set (a change was detected, or a reload runs) waits for that
attempt, at most ``build_timeout``; in manual mode requests never wait: the old version serves
until the new one has started, then the swap is instant.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType
from typing import Any

from .._config import Config
from .._engine import import_first
from .._errors import ImportStringError
from .._importer import load_app, split_import_string
from .._watch import Watcher
from .history import History
from .leaks import Holder, LeakTracker
from .oldcode import OldCode
from .project import Project
from .queue import Attempt, AttemptQueue
from .retire import Retirer
from .transaction import Runtime, Transaction
from .trigger import SharedTrigger
from .versions import AppVersion, VersionSet
from .worker import Worker, weakly

logger = logging.getLogger(__name__)

LEAK_CHECK_DELAY = 2.0  # seconds after the last retirement
# While an old version drains, the worker looks at it this often (and only then: an idle server
# has no periodic wake-ups from the pipeline).
_RETIRE_POLL = 0.02


@dataclass
class LoadedApp:
    """An app imported for reloading: what a middleware is built around. Built by ``load()``, so
    that ``reloadable()`` can tell ASGI from WSGI before it picks a middleware, running a factory
    only once."""

    import_string: str
    config: Config
    app: Any
    project: Project
    exit_callbacks: list[Callable[..., object]] = field(default_factory=list)
    module_code: dict[str, CodeType] = field(default_factory=dict)  # file -> the code it executed
    # Watch mode: the app failed to import at start. ``app`` is then what answers until a fixed
    # version builds (the middleware on top sets it: only it knows ASGI from WSGI).
    start_failure: ImportStringError | None = None


def load(import_string: str, config: Config, wrapper_module: str) -> LoadedApp:
    """Import the app for reloading.

    Raises:
        ImportStringError: the app cannot be imported (in watch mode: a wrong import string only;
            a failure inside its modules is the ``start_failure`` of what is returned), or it is
            defined in the wrapping module.
        ConfigError: the app's module is outside the watched directories.
    """
    root_module, _ = split_import_string(import_string)
    if root_module == wrapper_module:
        raise ImportStringError(
            f"The app {import_string!r} is defined in the module that wraps it; "
            "move the app to its own module and point the import string at it."
        )
    # In watch mode a broken file at start is a failure like any other: the server stays up, and
    # the app is served once the file is fixed. Manual mode (production) fails fast.
    first = import_first(import_string, factory=config.factory, survive=config.watch)
    project = Project(root_module, config, wrapper_module, first.imports)
    return LoadedApp(
        import_string, config, first.app, project, first.exit_callbacks, first.imports.module_code, first.failure
    )


class Pipeline:
    """Reload attempts and version lifecycle for one middleware."""

    def __init__(self, loaded: LoadedApp, runtime: Runtime, make_header: Callable[[int], Any]) -> None:
        self.config = config = loaded.config
        self.project = loaded.project
        # No part gets a bound method of the pipeline: its threads hold it weakly, so that a
        # pipeline nobody uses is freed, and then its threads stop.
        new_version = functools.partial(_new_version, runtime, make_header)
        # An app that failed to import at start is version 0, which answers with the error: the
        # first version that builds is version 1.
        first = new_version(0 if loaded.start_failure is not None else 1, loaded.app)
        first.exit_callbacks, loaded.exit_callbacks = loaded.exit_callbacks, []
        self.versions = VersionSet(first)
        self.history = History(error_page=config.error_page)
        self.queue = AttemptQueue(gated=config.watch)
        self.trigger = SharedTrigger(loaded.import_string)
        self.old_code = OldCode(self.history.old_code_ran)
        self.leaks = LeakTracker(LEAK_CHECK_DELAY, _held_by_libraries(self.old_code, self.project))
        self.old_code.executed(self.project.loaded_modules(), loaded.module_code)
        if loaded.start_failure is not None:
            self.history.start_failed(loaded.start_failure, self.project.report(loaded.start_failure))
            self.project.watch_failure(loaded.start_failure)
        self._retirer = Retirer(self.versions, runtime, self.leaks, config, self.old_code, self.history.shutdown_failed)
        self._transaction = Transaction(
            config,
            self.project,
            self.versions,
            runtime,
            history=self.history,
            retirer=self._retirer,
            old_code=self.old_code,
            new_version=new_version,
            load_app=functools.partial(load_app, loaded.import_string, factory=config.factory),
            open_gate=self.queue.open_gate,
        )
        self._start_hooks: list[Callable[[], object]] = []
        self.worker = Worker(self, self.queue, self._watcher_factory(), self.leaks, weakly(self._run_start_hooks))
        self.project.run_time_reads.start(self.queue.poke)

    def _watcher_factory(self) -> Callable[[], Watcher]:
        # Holds the pipeline only weakly: the watcher thread must not keep it alive.
        project, trigger = self.project, self.trigger
        request, on_trigger = weakly(self.request), weakly(self._on_trigger)
        return lambda: project.watcher(request, str(trigger.path), on_trigger)

    # -- what the middlewares and the admin endpoint use ----------------------------------------

    def on_start(self, hook: Callable[[], object]) -> None:
        """Run ``hook`` once, when serving starts (the server has set its logging up by then)."""
        self._start_hooks.append(hook)

    def start(self) -> None:
        self.worker.start()

    def close(self) -> None:
        """Stop the threads (the server is stopping); the trigger file goes too."""
        self.worker.close()
        self.project.run_time_reads.stop()
        self.old_code.close()
        self.trigger.remove()

    def request(self, *, force: bool = False, sweep: bool = False) -> Attempt:
        """Ask for a reload attempt (merged with one already queued); returns it, to wait on."""
        attempt = self.queue.put(force=force, sweep=sweep)
        if not self.worker.started:
            self.worker.start()
        return attempt

    def tell_other_workers(self, force: bool) -> None:
        """After a reload asked for by POST: every other worker process of this server reloads too."""
        try:
            self.trigger.fire(force=force)
        except OSError as exc:
            logger.warning("could not ask other worker processes to reload: %s", exc)

    def status(self) -> dict[str, Any]:
        """The status JSON (what ``GET`` on the admin endpoint shows a client with the credential)."""
        config, watcher = self.config, self.worker.watcher
        self.old_code.in_threads()  # reports a thread that runs replaced code (once)
        listening = watcher is not None and watcher.running
        return {
            "version": self.versions.current.number,
            **self.history.as_dict(),
            "reloading": self.queue.running is not None,
            "tracked_modules": len(self.project.graph.modules),
            "watching": config.watch and listening,
            "watcher": watcher.describe() if watcher is not None else None,
            "limits": {
                "build_timeout": config.build_timeout,
                "drain_timeout": config.drain_timeout,
                "drain": config.drain_before_build,
                "max_versions": config.max_versions,
            },
            "process": {"pid": os.getpid(), "shared_trigger": str(self.trigger.path), "listening": listening},
            "versions": self.versions.describe(),
            "leaked_versions": self.leaks.leaked,
        }

    # -- the worker thread's work (``worker.Workload``) ------------------------------------------

    def tend(self) -> None:
        """Whenever the worker wakes: retire the versions that are done, and take in the files
        project code read at run time (new dependencies, perhaps in a directory to watch too)."""
        self._retirer.retire_ready()
        self.project.run_time_reads.take()
        if self.project.dirs.moved and self.worker.started:
            self.worker.rewatch()
        if self.project.detector.dirty and self.config.watch:
            self.request()  # a file read at run time was edited before it was watched

    def idle_wait(self) -> float | None:
        return _RETIRE_POLL if self.versions.draining() else None

    def run(self, attempt: Attempt) -> None:
        outcome = self._transaction.run(attempt)
        self.queue.done(attempt, outcome)
        if self.project.dirs.moved:
            self.worker.rewatch()

    def _on_trigger(self) -> None:
        signal = self.trigger.take()
        if signal is not None:
            logger.info("another worker asked for a reload%s", " of everything" if signal.force else "")
            self.request(force=signal.force, sweep=True)

    def _run_start_hooks(self) -> None:
        hooks, self._start_hooks = self._start_hooks, []
        for hook in hooks:
            hook()


def _new_version(runtime: Runtime, make_header: Callable[[int], Any], number: int, app: Any) -> AppVersion:
    return AppVersion(number, runtime.adapt(app), make_header(number))


def _held_by_libraries(old_code: OldCode, project: Project) -> Callable[[int, Holder], None]:
    """What the leak check tells about who holds a retired version: old code held by a library's
    global (the serving app and the project's own modules are the stale check's, at each reload;
    this package holds nothing retired)."""
    own = __name__.split(".")[0]

    def held(version: int, holder: Holder) -> None:
        module = holder.module
        if module.split(".")[0] != own and module not in project.graph.modules:
            old_code.held(version, holder)

    return held

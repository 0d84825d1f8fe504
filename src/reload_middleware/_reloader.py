"""The engine under the reload pipeline: detect, plan and load, with no I/O framework.

It knows which files changed, which modules that affects, and how to build the app anew from
fresh modules; building in bounded time, starting, swapping and retiring versions belong to the
pipeline on top (``_pipeline.py``).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from watchfiles import Change

from . import adapters
from ._config import Config, Options, is_enabled
from ._dirs import WatchedDirs
from ._errors import BuildError, ConfigError, ErrorReport, ImportStringError, report_error
from ._graph import ModuleGraph
from ._handover import capturing_exit_callbacks, recording_hooks, run_hooks, unregister_exit_callbacks
from ._importer import caller_module, import_string_for, load_app, split_import_string
from ._leaks import LeakTracker
from ._loader import GroupLoad, ImportRecorder, LoadedGroup
from ._trigger import SharedTrigger
from ._watch import ChangeDetector, Fingerprint, SourceFilter, Watcher, fingerprint

logger = logging.getLogger(__name__)

_OWN_PACKAGE = __name__.rpartition(".")[0]
LEAK_CHECK_DELAY = 2.0  # seconds after the last retirement
# File timestamps come from a coarse kernel clock: compare them with some slack.
_CLOCK_MARGIN_NS = 50_000_000


@dataclass(frozen=True)
class Plan:
    """One reload to attempt: the files that changed and the module group they affect.

    ``restart_required`` names changed modules left out because this process cannot reload them
    (with the reason); they stay pending, and block nothing else.
    """

    changes: dict[str, Fingerprint | None]
    changed_modules: frozenset[str]
    group: frozenset[str]
    forced: bool = False
    restart_required: tuple[str, ...] = ()


class Reloader:
    """Loads the app named by an import string, and reloads the module groups its edits affect."""

    def __init__(self, import_string: str, config: Config, wrapper_module: str) -> None:
        self.import_string = import_string
        self.config = config
        self.root_module, _ = split_import_string(import_string)
        if self.root_module == wrapper_module:
            raise ImportStringError(
                f"The app {import_string!r} is defined in the module that wraps it; "
                "move the app to its own module and point the import string at it."
            )
        self._wrapper_module = wrapper_module
        with ImportRecorder() as first_imports, capturing_exit_callbacks() as self.first_exit_callbacks:
            self.app = load_app(import_string, factory=config.factory)
        self.dirs = WatchedDirs(config, self.root_module)
        if not self.filter.covers(os.path.realpath(getattr(sys.modules[self.root_module], "__file__", "") or "")):
            raise ConfigError(
                f"The app module {self.root_module!r} is not inside the watched directories "
                f"({', '.join(map(str, self.dirs.resolved))}): it could never be reloaded"
            )
        self.graph = ModuleGraph(lambda path: self.filter.covers(path), self._is_protected)
        self.graph.observe(first_imports.edges)
        self.graph.observe_reads(first_imports.reads, executed=())
        self.detector = ChangeDetector()
        self._refresh()
        self.trigger = SharedTrigger(import_string)
        self.leaks = LeakTracker(LEAK_CHECK_DELAY)

    @property
    def filter(self) -> SourceFilter:
        return self.dirs.filter

    def _is_protected(self, name: str) -> bool:
        return name in (self._wrapper_module, "__main__") or name.split(".")[0] == _OWN_PACKAGE

    def is_user_file(self, path: str) -> bool:
        return self.filter.covers(os.path.realpath(path))

    def watcher(self, on_change: Callable[[], object], on_trigger: Callable[[], object]) -> Watcher:
        """A watcher thread: ``on_change`` when watched files may have changed (unless watching is
        off), ``on_trigger`` when another worker process asks for a reload."""
        trigger_path = str(self.trigger.path)
        watching = self.config.watch

        def accept(change: Change, path: str) -> bool:
            return path == trigger_path or (watching and (self.filter(change, path) or self.graph.is_dependency(path)))

        def notice(paths: set[str] | None) -> None:
            if paths is None:
                if watching:
                    self.detector.sweep()  # edits made between the app's import and now
            else:
                if trigger_path in paths:
                    on_trigger()
                    paths.discard(trigger_path)
                if paths:
                    # A file no module comes from (a template): its first event counts as a
                    # change, its content is known from then on.
                    self.detector.track_unloaded(path for path in paths if self.filter.is_asset(path))
                    self.detector.notice(paths)
            if self.detector.dirty:
                on_change()

        def skip(path: str) -> bool:
            return self.filter.skips_directory(path)

        observed = self.dirs.watch(self.graph.paths()) if watching else ()
        directories = (*observed, self.trigger.directory)
        # Only the trigger to listen for (manual mode): no hurry, wake less often.
        return Watcher(directories, accept, notice, step_ms=5 if watching else 50, skip_directory=skip)

    def plan(self, *, force: bool = False, sweep: bool = False) -> Plan | None:
        """What to reload now, or ``None`` when nothing changed.

        Changed modules this process cannot reload (an extension module, the wrapper module, a
        module imported by one that declared itself not reloadable) are left out of the plan and
        named in ``restart_required``; they stay pending.
        """
        relocated: set[str] = set()
        if sweep or force:
            relocated = self._follow_relocation()
            self.detector.sweep()
        self._discover_modules()
        changes = self.detector.take_changes()
        changed_modules = self.graph.modules_at(changes) | relocated
        assets = {path for path in changes if self.filter.is_asset(path)}
        if assets:
            # A template or a named file changed: build the app anew (its module and importers),
            # so that whatever it loaded from such files (a template cache) starts afresh.
            changed_modules.add(self.root_module)
        if not changed_modules and not force:
            self.detector.commit(changes)  # files no module was loaded from: nothing to serve anew
            return None
        restart_required: list[str] = []
        reloadable: set[str] = set()
        group: set[str] = set()
        framework_reasons = adapters.restart_reasons(changed_modules)
        for name in sorted(changed_modules):
            tracked = self.graph.modules[name]
            affected = {other for other in self.graph.affected([name]) if not self._is_protected(other)}
            blocked = sorted(other for other in affected if not self.graph.modules[other].reloadable)
            if not tracked.reloadable:
                reason = "an extension module" if tracked.is_extension else "not reloadable"
                restart_required.append(f"{name} ({tracked.path}) changed and is {reason}: restart the server")
            elif name in framework_reasons:
                restart_required.append(f"{name} ({tracked.path}) changed: {framework_reasons[name]}")
            elif blocked:
                restart_required.append(
                    f"{name} changed and is imported by {', '.join(blocked)}, which declared itself not "
                    "reloadable: restart the server"
                )
            else:
                reloadable.add(name)
                group |= affected
        planned = {self.graph.modules[name].path for name in reloadable}
        if self.root_module in reloadable:
            planned |= assets
        self.detector.defer(path for path in changes if path not in planned)
        changes = {path: print_ for path, print_ in changes.items() if path in planned}
        if force:
            group = {name for name, tracked in self.graph.modules.items() if tracked.reloadable}
        elif not reloadable:
            return Plan(changes, frozenset(), frozenset(), restart_required=tuple(restart_required))
        group.add(self.root_module)
        for name in adapters.companions(group):
            if name in self.graph.modules and name not in group:
                group |= {other for other in self.graph.affected([name]) if not self._is_protected(other)}
        return Plan(changes, frozenset(reloadable), frozenset(group), force, tuple(restart_required))

    def _follow_relocation(self) -> set[str]:
        """A release switch (``current -> releases/v2``): the watched directories and the module
        files may now resolve elsewhere. Returns the modules whose file moved to different content:
        each is a change (one that moved unchanged behaves as before, wherever it lies)."""
        if self.dirs.follow():
            self.graph.forget_paths()
        moved = self.graph.relocated()
        changed = {name for name, (old, new) in moved.items() if not self.detector.same_content(old, new)}
        # Known from now on as they are: the changed ones are in the plan already.
        self.detector.track(new for _, new in moved.values())
        return changed

    def _refresh(self) -> None:
        """Catch up with ``sys.modules`` and remember the files of the modules new there."""
        fresh = self._refresh_graph_only()
        self.detector.track([*fresh, *self.graph.dependency_paths()])

    def _discover_modules(self) -> None:
        """Modules imported since the last look (lazily, by a request): start tracking them.

        One may have been edited after its import, before we knew of it. Its file's mtime says
        whether that can be: an edit after our last look counts as a pending change (at worst one
        reload too many), which stays pending until a reload that includes it succeeds; an older
        file is the one that was imported.
        """
        since = self._refreshed_ns - _CLOCK_MARGIN_NS
        for path in self._refresh_graph_only():
            if self.detector.knows(path):
                continue
            print_ = fingerprint(path)
            if print_ is not None and print_.stat[0] > since:
                self.detector.track_unloaded([path])
            else:
                self.detector.track([path])

    def _refresh_graph_only(self) -> list[str]:
        """The files of the modules new in the graph."""
        self._refreshed_ns = time.time_ns()
        fresh = self.graph.refresh()
        if fresh and self.config.watch:
            self.dirs.notice_imports(tracked.path for tracked in fresh)
        return [tracked.path for tracked in fresh]

    def begin(self, plan: Plan) -> GroupLoad:
        """The load of the plan's group, ready to ``build`` (in whichever thread runs it)."""
        return GroupLoad(plan.group, changed_paths=plan.changes)

    def build(self, plan: Plan, load: GroupLoad) -> LoadedGroup:
        """Import the plan's group anew; ``sys.modules`` is untouched if this raises ``BuildError``."""
        old = {name: sys.modules[name] for name in plan.group if name in sys.modules}
        restore_registries = adapters.release(old)
        with recording_hooks() as registered, capturing_exit_callbacks() as exit_callbacks:
            try:
                group = load.run(self._load_app, plan.changed_modules | adapters.imported_at_start(plan.group))
            except BuildError:
                run_hooks(registered)  # undo what the discarded modules registered at import
                unregister_exit_callbacks(exit_callbacks)
                restore_registries()
                raise
        load.after_restore.append(lambda: run_hooks(registered))
        load.after_restore.append(restore_registries)
        load.after_restore.append(lambda: unregister_exit_callbacks(exit_callbacks))
        group.exit_callbacks = exit_callbacks
        return group

    def _load_app(self) -> Any:
        return load_app(self.import_string, factory=self.config.factory)

    def commit(self, plan: Plan, loaded: LoadedGroup) -> None:
        """The new version serves: remember what it was built from."""
        adapters.committed()
        self.detector.commit(plan.changes)
        self.graph.observe(loaded.imports)
        self.graph.observe_reads(loaded.reads, executed=plan.group)
        self._refresh()
        self.app = loaded.app

    def abort(self) -> None:
        """The attempt failed: its changes are pending again, for the next attempt."""
        self.detector.abort()

    def report(self, exc: BaseException) -> ErrorReport:
        return report_error(exc, self.is_user_file)

    def tell_other_workers(self, force: bool) -> None:
        """After a reload asked for by POST: every other worker process of this server reloads too."""
        try:
            self.trigger.fire(force=force)
        except OSError as exc:
            logger.warning("could not ask other worker processes to reload: %s", exc)


def prepare(
    app: Any, *, enabled: bool | None, factory: bool, environ: Mapping[str, str] | None, options: Options
) -> tuple[Any, Reloader | None]:
    """What a middleware's constructor needs: the plain app and no reloader when reloading is off
    (a pure pass-through), else the loaded app and its reloader.

    Raises:
        ConfigError: a bad option or environment value.
        ImportStringError: the app cannot be imported, or its defining module cannot be found.
    """
    if not is_enabled(enabled, environ):
        return (load_app(app, factory=factory) if isinstance(app, str) else app), None
    wrapper = caller_module()
    import_string = app if isinstance(app, str) else import_string_for(app, wrapper)
    reloader = Reloader(import_string, Config.resolve(environ, factory=factory, **options), wrapper)
    return reloader.app, reloader

"""The project the app is built from: its watched files and its modules, what changed since the
serving version was built, and the reload that asks for (``Plan``).

It joins the two halves below the pipeline: change detection (``_watch``: files) and the module
graph (``_engine``: modules). Building, starting and swapping belong to the transaction.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from watchfiles import Change

from .._config import Config
from .._engine import ImportRecorder, LoadedGroup, ModuleGraph, RunTimeReads, group_for
from .._errors import ConfigError, ErrorReport, failure_files, report_error
from .._files import module_location
from .._watch import CLOCK_MARGIN_NS, ChangeDetector, Fingerprint, SourceFilter, WatchedDirs, Watcher, fingerprint

_OWN_PACKAGE = __name__.split(".")[0]


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


class Project:
    """The files and modules of one app: ``plan()`` what to reload, ``commit()`` what was loaded."""

    def __init__(self, root_module: str, config: Config, wrapper_module: str, first_imports: ImportRecorder) -> None:
        self.root_module = root_module
        self.watching = config.watch
        self._reload_delay = config.reload_delay
        self._wrapper_module = wrapper_module
        self.dirs = WatchedDirs(config, root_module)
        root_file = module_location(root_module)[0]
        if root_file is not None and not self.filter.covers(os.path.realpath(root_file)):
            raise ConfigError(
                f"The app module {root_module!r} is not inside the watched directories "
                f"({', '.join(map(str, self.dirs.resolved))}): it could never be reloaded"
            )
        self.graph = ModuleGraph(lambda path: self.filter.covers(path), self.is_protected)
        self.graph.observe(first_imports.edges)
        self.graph.observe_reads(first_imports.reads, executed=())
        self.detector = ChangeDetector()
        self._refreshed_ns = 0
        self._refresh()
        self.run_time_reads = RunTimeDependencies(self)

    @property
    def filter(self) -> SourceFilter:
        return self.dirs.filter

    def is_protected(self, name: str) -> bool:
        """Never reloaded: the module that wraps the app, ``__main__``, and this package."""
        return name in (self._wrapper_module, "__main__") or name.split(".")[0] == _OWN_PACKAGE

    def is_user_file(self, path: str) -> bool:
        return self.filter.covers(os.path.realpath(path))

    def report(self, exc: BaseException) -> ErrorReport:
        return report_error(exc, self.is_user_file)

    def watch_failure(self, exc: BaseException) -> None:
        """The project's files a failed import ran through (or could not compile) that no tracked
        module comes from (the module failed, so it was never loaded): their next edit is a change."""
        paths = {os.path.realpath(path) for path in failure_files(exc)}
        self.detector.track_unloaded(
            path for path in paths if self.filter.covers(path) and not self.detector.knows(path)
        )

    def loaded_modules(self) -> list[ModuleType]:
        """The project's reloadable modules, as they are in ``sys.modules``."""
        return list(self.unchanged_modules(frozenset()).values())

    def unchanged_modules(self, group: frozenset[str]) -> dict[str, ModuleType]:
        """The project's reloadable modules outside ``group``, as they are in ``sys.modules``."""
        return {
            name: sys.modules[name]
            for name, tracked in self.graph.modules.items()
            if tracked.reloadable and name not in group and name in sys.modules
        }

    def _is_dependency(self, path: str) -> bool:
        """A file a module read, or one in a directory a module listed."""
        return self.graph.is_dependency(path) or self.graph.is_dependency(os.path.dirname(path))

    def watcher(self, on_change: Callable[[], object], trigger_path: str, on_trigger: Callable[[], object]) -> Watcher:
        """A watcher thread: ``on_change`` when watched files may have changed (unless watching is
        off), ``on_trigger`` when ``trigger_path`` (another worker process asking) is written."""
        watching = self.watching

        def accept(change: Change, path: str) -> bool:
            return path == trigger_path or (watching and (self.filter(change, path) or self._is_dependency(path)))

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
                    # A file added to or removed from a directory a module listed: the listing changed.
                    listed = {os.path.dirname(path) for path in paths}
                    self.detector.notice(paths | {path for path in listed if self.graph.is_dependency(path)})
            if self.detector.dirty:
                on_change()

        observed = self.dirs.watch(self.graph.paths()) if watching else ()
        directories = (*observed, Path(trigger_path).parent)
        # Only the trigger to listen for (manual mode): no hurry, wake less often.
        return Watcher(
            directories,
            accept,
            notice,
            step_ms=5 if watching else 50,
            skip_directory=lambda path: self.filter.skips_directory(path),  # the filter follows a release switch
            quiet_s=self._reload_delay,
        )

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
        grouping = group_for(
            self.graph, changed_modules, root_module=self.root_module, is_protected=self.is_protected, force=force
        )
        planned = {self.graph.modules[name].path for name in grouping.reloadable}
        # A file read (or a directory listed) by a module that is reloaded: its new content is
        # what the new module reads; left out, it would stay pending and reload again and again.
        planned |= {path for path in changes if self.graph.readers_of(path) & grouping.reloadable}
        if self.root_module in grouping.reloadable:
            planned |= assets
        self.detector.defer(path for path in changes if path not in planned)
        changes = {path: print_ for path, print_ in changes.items() if path in planned}
        return Plan(changes, grouping.reloadable, grouping.group, force, grouping.restart_required)

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
        since = self._refreshed_ns - CLOCK_MARGIN_NS
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
        if fresh and self.watching:
            self.dirs.notice_imports(tracked.path for tracked in fresh)
        return [tracked.path for tracked in fresh]

    def commit(self, plan: Plan, loaded: LoadedGroup) -> None:
        """The new version serves: remember what it was built from."""
        self.detector.commit(plan.changes)
        self.graph.observe(loaded.imports)
        self.graph.observe_reads(loaded.reads, executed=plan.group)
        self.run_time_reads.forget(plan.group)  # the new modules' reads count anew
        self._refresh()

    def abort(self) -> None:
        """The attempt failed: its changes are pending again, for the next attempt."""
        self.detector.abort()


class RunTimeDependencies:
    """Files project code reads as it serves (a cached settings function reading ``.env`` at the
    first request): taken in as dependencies of the module whose code read them, watched, and an
    edit made before they were watched counts as a change."""

    def __init__(self, project: Project) -> None:
        self._project = project
        self._reads: RunTimeReads | None = None

    def start(self, wake: Callable[[], object]) -> None:
        """Record from now on; ``wake`` is called when there are reads to ``take()``."""
        roots = tuple(f"{directory}{os.sep}" for directory in self._project.dirs.resolved)
        self._reads = RunTimeReads(roots, self._is_reloadable, wake)
        self._reads.start()

    def stop(self) -> None:
        if self._reads is not None:
            self._reads.stop()

    def take(self) -> None:
        if self._reads is None:
            return
        reads, read_at = self._reads.take()
        if not reads:
            return
        project = self._project
        known = set(project.graph.dependency_paths())
        project.graph.observe_reads(reads, executed=())
        new = [path for path in project.graph.dependency_paths() if path not in known]
        when = {os.path.realpath(path): at for path, at in read_at.items()}
        for path in new:
            project.detector.track_read(path, when.get(path))  # edited since it was read: a change
        if project.watching:
            project.dirs.notice_imports(new)  # one outside the watched directories: watch it too

    def forget(self, modules: frozenset[str]) -> None:
        if self._reads is not None:
            self._reads.forget(modules)

    def _is_reloadable(self, name: str) -> bool:
        tracked = self._project.graph.modules.get(name)
        return tracked is not None and tracked.reloadable

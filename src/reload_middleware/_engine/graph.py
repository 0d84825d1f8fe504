"""Which modules a change affects: the changed modules plus everything that imports them.

Edges come from two sources, because neither alone is complete: the import statements in each
module's source (they see ``from x import CONSTANT``) and the live globals of each module (they see
``x = importlib.import_module(...)`` and names bound by any other route). Reading too many edges
only makes a group larger, which costs time but never correctness; missing one serves stale code.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType

from .._files import EXTENSION_SUFFIXES, SOURCE_SUFFIXES, environment_dirs
from .imports import ImportReader, TrackedModule

_INSTALLED = environment_dirs(as_given=True)
# Resolved module paths, shared by every graph of the process (a test suite builds hundreds):
# emptied when a sweep finds a symlink switched.
_REALPATHS: dict[str, str] = {}


_CODE_SUFFIXES = (*SOURCE_SUFFIXES, *EXTENSION_SUFFIXES, *importlib.machinery.BYTECODE_SUFFIXES)


def _is_code(path: str) -> bool:
    """A module's source, bytecode or extension: imports read those, they are no data files."""
    return path.endswith(_CODE_SUFFIXES) or f"{os.sep}__pycache__{os.sep}" in path


class ModuleGraph:
    """The tracked modules of this process, and their import edges.

    Kept up to date incrementally: ``refresh()`` looks only at what ``sys.modules`` gained, lost or
    replaced since the last look (a set difference of names, and an identity check per tracked
    module), and reads a module's edges once per module object. A reload's planning then costs
    what its group costs, not what the app or its libraries weigh.
    """

    def __init__(self, covers: Callable[[str], bool], protected: Callable[[str], bool]) -> None:
        self._paths = _WatchedPaths(covers)
        self._protected = protected
        self.modules: dict[str, TrackedModule] = {}
        self._by_path: dict[str, list[str]] = {}
        self._reader = ImportReader()
        # Imports seen as they happened (importer -> imported), by name too (a plugin loader).
        self._observed: dict[str, set[str]] = {}
        # What each tracked module imports, read from the module object ``_objects`` names, and
        # who imports whom (tracked or not: a name may be tracked later), kept in step with it.
        self._edges: dict[str, set[str]] = {}
        self._objects: dict[str, int] = {}
        self._importers: dict[str, set[str]] = {}
        self._seen: set[str] = set()  # every name of sys.modules at the last look, tracked or not
        # Files (not modules) read while modules executed, and by which: a config, a data file.
        self._readers: dict[str, set[str]] = {}

    def refresh(self) -> list[TrackedModule]:
        """Catch up with ``sys.modules`` (at start, after every reload, before every plan; never
        per request). Returns the tracked modules that are new since the last look, or new objects."""
        modules = sys.modules
        # One snapshot (built in one C call, so no other thread's import lands halfway through):
        # a name added after it is new at the next look, never lost between two.
        names = set(modules)
        for name in self._seen - names:
            self._forget(name)
        candidates = names - self._seen
        candidates.update(name for name, ident in self._objects.items() if id(modules.get(name)) != ident)
        self._seen = names
        fresh: list[TrackedModule] = []
        for name in candidates:
            module = modules.get(name)
            tracked = self._track(name, module)
            if tracked is None:
                self._forget(name)
                continue
            fresh.append(tracked)
        for tracked in fresh:  # their edges, once all of them are known
            self._read_edges(tracked.name)
        return fresh

    def _track(self, name: str, module: object) -> TrackedModule | None:
        if not isinstance(module, ModuleType) or name == "__main__":
            return None
        path = self._paths.resolve(getattr(module, "__file__", None))
        if path is None:
            return None
        is_extension = path.endswith(EXTENSION_SUFFIXES)
        if not is_extension and not path.endswith(SOURCE_SUFFIXES):
            return None
        old = self.modules.get(name)
        if old is not None and old.path != path:
            self._drop_path(old)
        tracked = self.modules[name] = TrackedModule(
            name=name,
            path=path,
            is_package=hasattr(module, "__path__"),
            is_extension=is_extension,
            reloadable=not is_extension
            and not self._protected(name)
            and getattr(module, "__reloadable__", True) is not False,
        )
        # A module another thread is still executing has not bound all its globals yet: its
        # edges are read again at the next look, until it is complete.
        initializing = getattr(getattr(module, "__spec__", None), "_initializing", False)
        self._objects[name] = 0 if initializing else id(module)
        names = self._by_path.setdefault(path, [])
        if name not in names:
            names.append(name)
        return tracked

    def _forget(self, name: str) -> None:
        """``name`` left ``sys.modules`` (or is no module of ours any more)."""
        tracked = self.modules.pop(name, None)
        self._objects.pop(name, None)
        if tracked is not None:
            self._drop_path(tracked)
        self._set_edges(name, set())

    def _drop_path(self, tracked: TrackedModule) -> None:
        names = self._by_path.get(tracked.path, [])
        if tracked.name in names:
            names.remove(tracked.name)
        if not names:
            self._by_path.pop(tracked.path, None)

    def _read_edges(self, name: str) -> None:
        self._set_edges(name, self._imports_of(name))

    def _set_edges(self, importer: str, imported: set[str]) -> None:
        for target in self._edges.get(importer, set()) - imported:
            importers = self._importers.get(target)
            if importers is not None:
                importers.discard(importer)
        for target in imported:
            if target != importer:
                self._importers.setdefault(target, set()).add(importer)
        if imported:
            self._edges[importer] = imported
        else:
            self._edges.pop(importer, None)

    def relocated(self) -> dict[str, tuple[str, str]]:
        """Tracked modules whose file now resolves elsewhere (a symlink on its path was switched),
        with their old and new paths.

        Resolves every module file again: for sweeps only, never per request.
        """
        moved: dict[str, tuple[str, str]] = {}
        for name, tracked in self.modules.items():
            raw = getattr(sys.modules.get(name), "__file__", None)
            if isinstance(raw, str):
                path = os.path.realpath(raw)
                if path != tracked.path:
                    moved[name] = (tracked.path, path)
        if moved:
            self.forget_paths()
        return moved

    def forget_paths(self) -> None:
        """The watched directories changed: every cached resolution is to be made again, and every
        module looked at again by the next ``refresh()``."""
        self._paths.forget()
        self._seen.clear()
        self._objects.clear()

    def paths(self) -> list[str]:
        """Every watched file the app depends on: module files, and files modules read."""
        return [*self._by_path, *self._readers]

    def dependency_paths(self) -> list[str]:
        """The files (not modules) that modules read as they executed."""
        return list(self._readers)

    def modules_at(self, paths: Iterable[str]) -> set[str]:
        """The modules loaded from ``paths``, and those that read one of them as they executed."""
        found: set[str] = set()
        for path in paths:
            found.update(self._by_path.get(path, ()))
            found.update(name for name in self._readers.get(path, ()) if name in self.modules)
        return found

    def readers_of(self, path: str) -> set[str]:
        """The modules that read (or listed) ``path`` as they executed."""
        return set(self._readers.get(path, ()))

    def is_dependency(self, path: str) -> bool:
        """Whether ``path`` (resolved) is a file a module read as it executed."""
        return path in self._readers

    def observe_reads(self, reads: Mapping[str, set[str]], executed: Iterable[str]) -> None:
        """Files read by the modules that just ran (``executed``): what they read before is forgotten."""
        executed = set(executed)
        for readers in self._readers.values():
            readers -= executed
        for module, paths in reads.items():
            for path in paths:
                watched = self._paths.resolve(path)
                if watched is not None and not _is_code(watched) and watched not in self._by_path:
                    self._readers.setdefault(watched, set()).add(module)
        self._readers = {path: readers for path, readers in self._readers.items() if readers}

    def affected(self, changed: Iterable[str]) -> set[str]:
        """The changed modules, every tracked module that imports one of them (transitively), and
        the submodules of every package in the group, since a fresh package has none of them."""
        group: set[str] = set()
        todo = [name for name in changed if name in self.modules]
        while todo:
            name = todo.pop()
            if name in group or name not in self.modules:
                continue
            group.add(name)
            todo.extend(self._importers.get(name, ()))
            if self.modules[name].is_package:
                prefix = name + "."
                todo.extend(other for other in self.modules if other.startswith(prefix))
        return group

    def observe(self, imports: Iterable[tuple[str, str]]) -> None:
        """Imports seen while modules ran: each importer is re-executed with what it imported."""
        for importer, imported in imports:
            self._observed.setdefault(importer, set()).add(imported)
            if importer in self._edges or importer in self.modules:
                self._edges.setdefault(importer, set()).add(imported)
                if imported != importer:
                    self._importers.setdefault(imported, set()).add(importer)

    def _imports_of(self, name: str) -> set[str]:
        return self._reader.read(self.modules[name], sys.modules.get(name)) | self._observed.get(name, set())


class _WatchedPaths:
    """Module files resolved, and whether they are watched. Resolving costs a few ``lstat`` calls
    per file, so it is cached: a thousand installed modules must not slow each reload."""

    def __init__(self, covers: Callable[[str], bool]) -> None:
        self._covers = covers
        self._resolved: dict[str, str | None] = {}

    def resolve(self, raw: object) -> str | None:
        """The resolved path of a module file if it is watched."""
        if not isinstance(raw, str):
            return None
        if raw not in self._resolved:
            if raw.startswith(_INSTALLED):  # never watched: no need to resolve it (most modules)
                self._resolved[raw] = None
                return None
            path = _REALPATHS.get(raw) or _REALPATHS.setdefault(raw, os.path.realpath(raw))
            self._resolved[raw] = path if self._covers(path) else None
        return self._resolved[raw]

    def forget(self) -> None:
        """Symlinks may point elsewhere now: resolve everything again."""
        self._resolved.clear()
        _REALPATHS.clear()

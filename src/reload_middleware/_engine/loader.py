"""Import a module group anew as fresh module objects; on any failure put ``sys.modules`` back exactly.

Never ``importlib.reload``: that re-runs a module inside its old namespace, so removed names
survive and every ``from x import y`` elsewhere keeps the old ``y``. Here the group's entries
leave ``sys.modules``, the app root is imported again (which imports the group in the order a
fresh process would), and the old module objects stay untouched for the old version to finish on.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import CodeType, ModuleType
from typing import Any

from .._errors import BuildError
from .reads import ReadRecorder


@dataclass
class LoadedGroup:
    """The outcome of a load: the new app, and what is needed to undo it until it is committed."""

    app: Any
    old_modules: dict[str, ModuleType]
    new_modules: dict[str, ModuleType]
    rollback: Callable[[], None]
    imports: set[tuple[str, str]]  # (importer, imported), as they happened
    reads: dict[str, set[str]] = field(default_factory=dict)  # module -> files it read as it ran
    module_code: dict[str, CodeType] = field(default_factory=dict)  # file -> the code it executed
    exit_callbacks: list[Callable[..., object]] = field(default_factory=list)  # atexit, by this build


class GroupLoad:
    """One attempt to import ``group`` anew: ``run()`` it (in any thread), ``restore()`` to undo it.

    ``restore()`` may be called from another thread while ``run()`` is stuck, and again when it
    ends: each time ``sys.modules`` is put back to the snapshot taken here.
    """

    def __init__(self, group: Iterable[str], changed_paths: Iterable[str] = ()) -> None:
        self._members = set(group)
        self._changed_paths = list(changed_paths)
        self._snapshot: dict[str, ModuleType] | None = None
        # What this load imported itself: a rollback removes those, never what another thread
        # (a request of the old version) imported meanwhile.
        self._imported: set[str] = set()
        self._unbound: list[tuple[ModuleType, str, ModuleType]] = []
        self.after_restore: list[Callable[[], object]] = []

    def run(self, load_app: Callable[[], Any], eager: Iterable[str] = ()) -> LoadedGroup:
        """Remove the group from ``sys.modules`` and call ``load_app`` to import it anew.

        Members the app root does not reach (the old version imported them lazily) stay unloaded,
        as in a fresh process, until something imports them again; except the ``eager`` ones (the
        edited modules), imported afterwards so that an error in them fails this reload, not a
        later request.

        Raises:
            BuildError: from the original exception, whatever it was (``SystemExit`` and
                ``KeyboardInterrupt`` too: at import they are a broken module, not a request to
                stop the server); ``sys.modules`` is then exactly as before.
        """
        # The snapshot is taken here, in the thread that imports, right before the first change.
        snapshot = self._snapshot = dict(sys.modules)
        recorder = self.recorder = ImportRecorder(self._imported).__enter__()
        order = [name for name in snapshot if name in self._members]
        old_modules = {name: snapshot[name] for name in order}
        for path in self._changed_paths:
            _remove_stale_bytecode(path)
        self._unbound = _unbind_from_parents(old_modules)
        for name in order:
            del sys.modules[name]
        importlib.invalidate_caches()
        eager = set(eager)
        try:
            app = load_app()
            for name in order:
                if name in eager and name not in sys.modules and _source_exists(old_modules[name]):
                    importlib.import_module(name)
        except BaseException as exc:
            self.restore()
            raise BuildError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            recorder.__exit__()
        new_modules = {name: sys.modules[name] for name in order if name in sys.modules}
        return LoadedGroup(
            app, old_modules, new_modules, self.restore, recorder.edges, recorder.reads, recorder.module_code
        )

    def restore(self) -> None:
        """Undo the load: the old modules serve on."""
        if self._snapshot is None:
            return  # nothing was changed yet
        restore_modules(self._snapshot, self._unbound, owned=self._imported | self._members)
        for callback in self.after_restore:
            callback()


def load_group(
    group: Iterable[str],
    load_app: Callable[[], Any],
    changed_paths: Iterable[str] = (),
    eager: Iterable[str] = (),
) -> LoadedGroup:
    """Import ``group`` anew in this thread (see ``GroupLoad.run``)."""
    return GroupLoad(group, changed_paths).run(load_app, eager)


def _unbind_from_parents(modules: Mapping[str, ModuleType]) -> list[tuple[ModuleType, str, ModuleType]]:
    """Take each module off its parent package's attributes.

    ``from pkg import sub`` returns the attribute ``pkg.sub`` whenever it exists, without looking at
    ``sys.modules``: left in place it would hand the old module to every new importer.
    """
    unbound = []
    for name, module in modules.items():
        parent_name, _, child = name.rpartition(".")
        parent = sys.modules.get(parent_name)
        if parent is not None and parent_name not in modules and getattr(parent, child, None) is module:
            delattr(parent, child)
            unbound.append((parent, child, module))
    return unbound


def restore_modules(
    snapshot: Mapping[str, ModuleType],
    unbound: Iterable[tuple[ModuleType, str, ModuleType]] = (),
    owned: set[str] | None = None,
) -> None:
    """Put back every entry of ``snapshot``, and point parent packages back at old submodules.

    Entries added since are removed: all of them, or only the ``owned`` ones (those the load
    imported itself). Entries are replaced one by one, never cleared, so another thread never
    sees an empty table.
    """
    current = dict(sys.modules)
    for name, module in current.items():
        if snapshot.get(name) is module or (owned is not None and name not in snapshot and name not in owned):
            continue
        parent_name, _, child = name.rpartition(".")
        parent = snapshot.get(parent_name)
        if parent is not None and getattr(parent, child, None) is module:
            # The import machinery bound the attempted module on an old parent package.
            if name in snapshot:
                setattr(parent, child, snapshot[name])
            else:
                with contextlib.suppress(AttributeError):
                    delattr(parent, child)
        if name not in snapshot:
            del sys.modules[name]
    for name, module in snapshot.items():
        if sys.modules.get(name) is not module:
            sys.modules[name] = module
    for parent, child, module in unbound:
        setattr(parent, child, module)


class ImportRecorder:
    """A meta path entry that finds nothing and notes what one thread imports, and from where.

    ``edges`` holds (importer, imported) pairs as they really happen: an ``import`` statement, and
    also ``importlib.import_module(name)`` and ``__import__`` by name (a plugin loader), which no
    reading of the sources would find.
    """

    def __init__(self, names: set[str] | None = None) -> None:
        self._thread = threading.get_ident()
        self.names = set() if names is None else names
        self.edges: set[tuple[str, str]] = set()
        self._reads = ReadRecorder()

    @property
    def reads(self) -> dict[str, set[str]]:
        """Files each module read while it executed: ``{module: {path}}``."""
        return self._reads.reads

    @property
    def module_code(self) -> dict[str, CodeType]:
        """The top-level code each module executed, by the file it was compiled from."""
        return self._reads.module_code

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if threading.get_ident() != self._thread:
            return
        self.names.add(fullname)
        frame = sys._getframe(1)
        while frame is not None:
            importer = str(frame.f_globals.get("__name__", ""))
            if not importer.startswith(_MACHINERY):
                self.edges.add((importer, fullname))
                return
            frame = frame.f_back  # type: ignore[assignment]

    def __enter__(self) -> ImportRecorder:
        sys.meta_path.insert(0, self)
        self._reads.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._reads.__exit__()
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)


# Frames to look past for the module that asked for an import.
_MACHINERY = ("importlib", "_frozen_importlib", __name__.split(".")[0])


def _source_exists(module: ModuleType) -> bool:
    path = getattr(module, "__file__", None)
    return isinstance(path, str) and os.path.exists(path)


def _remove_stale_bytecode(path: str) -> None:
    """Bytecode is validated by whole-second mtime and size: two same-size saves within a second
    would load the first save's ``.pyc``. The file changed, so its cache is worthless anyway."""
    if not path.endswith(".py"):
        return
    with contextlib.suppress(NotImplementedError, ValueError, OSError):
        os.unlink(importlib.util.cache_from_source(path))

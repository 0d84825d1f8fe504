"""What counts as Python code, where installed code lives, and where a module comes from: shared
by the watcher, the module graph and the project."""

from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig

SOURCE_SUFFIXES = (".py",)
NEVER_WATCHED = frozenset({"site-packages", "dist-packages", "node_modules", "__pycache__"})
EXTENSION_SUFFIXES = (".so", ".pyd")


def environment_dirs(*, as_given: bool = False) -> tuple[str, ...]:
    """Directories that hold installed code: never watched, never reloaded. Resolved, or also as
    given (``as_given``), to recognise a module path without resolving it."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, *sysconfig.get_paths().values()}
    found = {os.path.realpath(d) + os.sep for d in dirs if d}
    if as_given:
        found |= {os.path.abspath(d) + os.sep for d in dirs if d}
    return tuple(sorted(found))


def module_location(name: str) -> tuple[str | None, tuple[str, ...]]:
    """Where module ``name`` comes from, imported or not (an app that failed to import at start is
    not): its file and, for a package, its directories; ``(None, ())`` when that cannot be told
    without running code that fails (its package's ``__init__``)."""
    module = sys.modules.get(name)
    if module is not None:
        return getattr(module, "__file__", None), tuple(getattr(module, "__path__", ()))
    try:
        spec = importlib.util.find_spec(name)
    except Exception:
        return None, ()
    if spec is None:
        return None, ()
    return (spec.origin if spec.has_location else None), tuple(spec.submodule_search_locations or ())

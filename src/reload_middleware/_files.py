"""What counts as Python code, and where installed code lives: shared by the watcher and the module graph."""

from __future__ import annotations

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

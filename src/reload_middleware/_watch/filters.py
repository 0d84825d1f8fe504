"""Which files count: Python sources and extension modules under the watched directories, the
assets named by ``include`` (templates), less ``exclude`` and the directories never watched."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path, PurePath

import watchfiles

from .._files import EXTENSION_SUFFIXES, NEVER_WATCHED, SOURCE_SUFFIXES, environment_dirs


class SourceFilter(watchfiles.DefaultFilter):
    """Python sources and extension modules below the watch directories, minus exclusions."""

    def __init__(self, watch_dirs: Sequence[Path], exclude: Sequence[str], include: Sequence[str] = ()) -> None:
        self._installed = environment_dirs()
        self.ignore_paths = self._installed
        super().__init__()
        self._roots = tuple(str(d) + os.sep for d in watch_dirs)
        self._exclude = tuple(exclude)
        self._include = tuple(include)

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        return (path.endswith(SOURCE_SUFFIXES + EXTENSION_SUFFIXES) or self.is_asset(path)) and self.covers(path)

    def is_asset(self, path: str) -> bool:
        """A file, not a module, whose edits reload the app (a template; see the ``include`` option)."""
        name = os.path.basename(path)
        return any(fnmatch.fnmatch(name, pattern) for pattern in self._include)

    def covers(self, path: str) -> bool:
        """Whether ``path`` (absolute, resolved) belongs to the watched tree: below a watched
        directory, and not in a hidden directory, a virtualenv's ``site-packages`` or ``node_modules``
        (a project root holds those too, as with ``uvicorn --reload``)."""
        root = next((root for root in self._roots if path.startswith(root)), None)
        if root is None or not super().__call__(watchfiles.Change.modified, path):
            return False
        inside = path[len(root) :].split(os.sep)[:-1]
        if any(part.startswith(".") or part in NEVER_WATCHED for part in inside):
            return False
        pure = PurePath(path)
        return not any(pure.match(pattern) for pattern in self._exclude)

    def skips_directory(self, path: str) -> bool:
        """Whether a directory below a watched one holds nothing ``covers`` could accept."""
        name = os.path.basename(path)
        return name.startswith(".") or name in NEVER_WATCHED or (path + os.sep).startswith(self._installed)

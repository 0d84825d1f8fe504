"""Directories a module puts on ``sys.path`` at import (a Django settings module adding its apps
folder), as effects of that module: a version that no longer adds one must not find modules there,
as a fresh process would not.

``sys.path`` is a plain list whose methods cannot be wrapped, so it is replaced once, when
reloading is on, by a list of the same entries that notes what is added to it (an assignment of a
new list to ``sys.path`` simply ends the noting).
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FrameType
from typing import Any, SupportsIndex


@dataclass(frozen=True)
class PathAdded:
    """``entry`` put on ``sys.path`` at ``index``."""

    entry: Any
    index: int

    def undo(self) -> None:
        if self.entry in sys.path:
            sys.path.remove(self.entry)

    def redo(self) -> None:
        sys.path.insert(self.index, self.entry)


Note = Callable[[PathAdded, FrameType | None], bool]


def install(note: Note) -> None:
    if not isinstance(sys.path, _NotedPath):
        sys.path = _NotedPath(sys.path, note)


class _NotedPath(list[Any]):
    """``sys.path``, noting every entry added by the caller of each change (a copy of it is a plain
    list, and notes nothing)."""

    def __init__(self, entries: Iterable[Any], note: Note) -> None:
        super().__init__(entries)
        self._note = note

    def __reduce__(self) -> tuple[type[list[Any]], tuple[list[Any]]]:
        return list, (list(self),)

    def append(self, entry: Any) -> None:
        super().append(entry)
        self._added(entry, len(self) - 1, sys._getframe(1))

    def insert(self, index: SupportsIndex, entry: Any) -> None:
        at = operator.index(index)
        position = max(0, len(self) + at) if at < 0 else min(at, len(self))  # as list.insert places it
        super().insert(index, entry)
        self._added(entry, position, sys._getframe(1))

    def extend(self, entries: Iterable[Any]) -> None:
        self._append_all(entries, sys._getframe(1))

    def __iadd__(self, entries: Iterable[Any]) -> _NotedPath:  # type: ignore[misc]
        self._append_all(entries, sys._getframe(1))
        return self

    def _append_all(self, entries: Iterable[Any], caller: FrameType) -> None:
        for entry in list(entries):
            super().append(entry)
            self._added(entry, len(self) - 1, caller)

    def __setitem__(self, key: Any, value: Any) -> None:
        before = list(self)
        super().__setitem__(key, value)
        caller = sys._getframe(1)
        for index, entry in enumerate(list(self)):
            if entry in before:
                before.remove(entry)
            else:
                self._added(entry, index, caller)

    def _added(self, entry: Any, index: int, caller: FrameType) -> None:
        if self is sys.path:
            self._note(PathAdded(entry, index), caller)

"""Import-time side effects on the logging system, taken back when their module is replaced.

A module that adds a handler at import (``logging.getLogger(__name__).addHandler(...)``,
``basicConfig()``, ``dictConfig()``) adds it again at every reload: after three reloads every
line was logged four times, and ``basicConfig()`` of the new version did nothing at all (the old
handler was still there). So the handlers and filters a module adds while it executes are noted
for it; before its group is imported anew they are taken off (the new module adds its own, as in
a fresh process), and put back if that build is discarded.

``dictConfig()`` disables every logger it does not name (``disable_existing_loggers``): ours are
enabled again after each import, so that the reload lines always reach the server's log.

Recording needs ``Logger.addHandler`` and ``Filterer.addFilter`` to be seen: they are wrapped
once, when reloading is on, and note nothing outside a recording thread.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .reads import executing_namespace

_OWN_LOGGER = __name__.split(".")[0]
_recording = threading.local()
_lock = threading.Lock()
_installed = False
# Effects by the id of the namespace of the module that made them; the namespace is held so that
# the id cannot be reused while its effects are noted.
_effects: dict[int, tuple[dict[str, Any], list[Added]]] = {}


@dataclass(frozen=True)
class Added:
    """``item`` (a handler or a filter) added to ``target`` (a logger, or a handler for a filter)."""

    target: Any
    item: Any

    def undo(self) -> None:
        if isinstance(self.item, logging.Handler):
            self.target.removeHandler(self.item)
        else:
            self.target.removeFilter(self.item)

    def redo(self) -> None:
        if isinstance(self.item, logging.Handler):
            self.target.addHandler(self.item)
        else:
            self.target.addFilter(self.item)


@contextlib.contextmanager
def recording_effects() -> Iterator[list[int]]:
    """Note the effects of the modules this thread executes; yields the ids of their namespaces."""
    _install()
    outer = getattr(_recording, "namespaces", None)
    namespaces: list[int] = []
    _recording.namespaces = namespaces
    try:
        yield namespaces
    finally:
        _recording.namespaces = outer
        _enable_own_loggers()


def release_effects(modules: Iterable[ModuleType]) -> Callable[[], None]:
    """Take back what ``modules`` added; returns what puts it back (for a discarded build)."""
    with _lock:
        taken = [entry for module in modules if (entry := _effects.pop(id(vars(module)), None)) is not None]
    for _, effects in taken:
        for effect in reversed(effects):
            effect.undo()

    def restore() -> None:
        for namespace, effects in taken:
            for effect in effects:
                effect.redo()
            with _lock:
                _effects[id(namespace)] = (namespace, effects)

    return restore


def discard_effects(namespace_ids: Iterable[int]) -> None:
    """Take back what the modules of a discarded build added."""
    with _lock:
        taken = [entry for key in dict.fromkeys(namespace_ids) if (entry := _effects.pop(key, None)) is not None]
    for _, effects in taken:
        for effect in reversed(effects):
            effect.undo()


def _note(target: object, item: object) -> None:
    namespaces: list[int] | None = getattr(_recording, "namespaces", None)
    if namespaces is None:
        return
    namespace = executing_namespace(sys._getframe(2))
    if namespace is None:
        return
    with _lock:
        _effects.setdefault(id(namespace), (namespace, []))[1].append(Added(target, item))
    namespaces.append(id(namespace))


def _install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    add_handler, add_filter = logging.Logger.addHandler, logging.Filterer.addFilter

    def recorded_add_handler(self: logging.Logger, handler: logging.Handler) -> None:
        if handler not in self.handlers:
            _note(self, handler)
        add_handler(self, handler)

    def recorded_add_filter(self: logging.Filterer, filter: Any) -> None:
        if filter not in self.filters:
            _note(self, filter)
        add_filter(self, filter)

    logging.Logger.addHandler = recorded_add_handler  # type: ignore[method-assign,assignment]
    logging.Filterer.addFilter = recorded_add_filter  # type: ignore[method-assign]


def _enable_own_loggers() -> None:
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if (name == _OWN_LOGGER or name.startswith(_OWN_LOGGER + ".")) and isinstance(logger, logging.Logger):
            logger.disabled = False

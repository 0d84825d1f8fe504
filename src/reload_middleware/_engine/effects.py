"""Import-time side effects outside a module's namespace, taken back when the module is replaced.

A module that adds a logging handler at import adds it again at every reload (after three reloads
every line was logged four times); one that puts a directory on ``sys.path`` or installs a signal
handler leaves it behind for versions that no longer do. So what a module does to the process
while it executes is noted for it (the kinds: ``handlers``, ``syspath``, ``signals``); before its
group is imported anew it is taken back (the new module does its own, as in a fresh process), and
put back if that build is discarded or rolled back.

Noting needs the calls to be seen: each kind wraps its entry points once, when reloading is on,
and notes nothing outside a recording thread or for code that is not a module's top-level code
(a request handler adding a handler is the app's business, not an import's).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import Any, Protocol

from . import handlers, signals, syspath
from .reads import executing_namespace


class Effect(Protocol):
    def undo(self) -> None: ...

    def redo(self) -> None: ...


_recording = threading.local()
_lock = threading.Lock()
_installed = False
# Effects by the id of the namespace of the module that made them; the namespace is held so that
# the id cannot be reused while its effects are noted.
_effects: dict[int, tuple[dict[str, Any], list[Effect]]] = {}


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
        handlers.enable_own_loggers()


def release_effects(modules: Iterable[Any]) -> Callable[[], None]:
    """Take back what ``modules`` did; returns what puts it back (for a discarded build)."""
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
    """Take back what the modules of a discarded build did."""
    with _lock:
        taken = [entry for key in dict.fromkeys(namespace_ids) if (entry := _effects.pop(key, None)) is not None]
    for _, effects in taken:
        for effect in reversed(effects):
            effect.undo()


def note(effect: Effect, caller: FrameType | None) -> bool:
    """Note ``effect`` for the module whose top-level code runs in ``caller`` (or below it), if this
    thread records; whether it was noted."""
    namespaces: list[int] | None = getattr(_recording, "namespaces", None)
    if namespaces is None:
        return False
    namespace = executing_namespace(caller)
    if namespace is None:
        return False
    with _lock:
        _effects.setdefault(id(namespace), (namespace, []))[1].append(effect)
    namespaces.append(id(namespace))
    return True


def _install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    handlers.install(note)
    syspath.install(note)
    signals.install(note)

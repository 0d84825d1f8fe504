"""What a module hands from one version to the next: objects it keeps, and hooks that undo its
import-time side effects (a logging handler, a registry entry, a thread) when it is replaced.

Usage inside a reloadable module::

    from reload_middleware import keep, on_retire

    cache = keep("cache", dict)            # the previous version's dict, or a new one
    handler = logging.StreamHandler()
    logging.getLogger().addHandler(handler)
    on_retire(lambda: logging.getLogger().removeHandler(handler))
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any, TypeVar, cast

logger = logging.getLogger(__name__)

T = TypeVar("T")
Hook = Callable[[], object]

_lock = threading.Lock()
_kept: dict[tuple[str, str], object] = {}
# Hooks by the id of the registering module's namespace; the namespace itself is held so that the
# id cannot be reused before the hooks have run.
_hooks: dict[int, tuple[dict[str, Any], list[Hook]]] = {}
_recording: list[int] | None = None


def keep(name: str, factory: Callable[[], T]) -> T:
    """Return the object this module kept under ``name`` in an earlier version, or ``factory()``.

    The key is the calling module's name plus ``name``, so two modules never share an object by
    accident. Kept objects live as long as the process.
    """
    key = (str(sys._getframe(1).f_globals.get("__name__")), name)
    with _lock:
        if key not in _kept:
            _kept[key] = factory()
        return cast(T, _kept[key])


def kept_objects() -> list[object]:
    """Every object ``keep()`` holds: they run their version's code on purpose."""
    with _lock:
        return list(_kept.values())


def on_retire(hook: Hook) -> Hook:
    """Run ``hook`` when the calling module's version is replaced by a reload, or when the reload
    that imported it fails. Returns ``hook``, so it can be used as a decorator."""
    namespace = sys._getframe(1).f_globals
    with _lock:
        _hooks.setdefault(id(namespace), (namespace, []))[1].append(hook)
        if _recording is not None:
            _recording.append(id(namespace))
    return hook


@contextlib.contextmanager
def recording_hooks() -> Iterator[list[int]]:
    """Collect the namespaces that register hooks during a build, to undo them if it fails."""
    global _recording
    registered: list[int] = []
    with _lock:
        _recording = registered
    try:
        yield registered
    finally:
        with _lock:
            _recording = None


def run_hooks(namespace_ids: Iterable[int]) -> None:
    for namespace_id in dict.fromkeys(namespace_ids):
        with _lock:
            entry = _hooks.pop(namespace_id, None)
        for hook in entry[1] if entry else ():
            try:
                hook()
            except Exception:
                logger.exception("on_retire hook %r failed", hook)


def run_module_hooks(modules: Iterable[ModuleType]) -> None:
    run_hooks(id(vars(module)) for module in modules)


@contextlib.contextmanager
def capturing_exit_callbacks() -> Iterator[list[Callable[..., object]]]:
    """Collect the ``atexit`` callbacks this thread registers (a version's modules and app, while
    they are built): they hold that version alive until they are unregistered at its retirement."""
    captured: list[Callable[..., object]] = []
    original = atexit.register
    thread = threading.get_ident()

    def register(function: Callable[..., object], *args: Any, **kwargs: Any) -> Callable[..., object]:
        if threading.get_ident() == thread:
            captured.append(function)
        return original(function, *args, **kwargs)

    atexit.register = register  # type: ignore[assignment]
    try:
        yield captured
    finally:
        atexit.register = original


def unregister_exit_callbacks(callbacks: Iterable[Callable[..., object]]) -> None:
    for function in callbacks:
        atexit.unregister(function)

"""Tell whether the modules of a retired version were freed, and if not, who holds them.

A module object may die while its namespace lives on (every function keeps its ``__globals__``),
so each retired namespace gets a small sentinel object; the namespace is alive exactly as long as
its sentinel is.
"""

from __future__ import annotations

import functools
import gc
import logging
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType, FunctionType, ModuleType
from typing import Any

from .._threads import own_thread

logger = logging.getLogger(__name__)

SENTINEL_NAME = "__reload_middleware_retired__"
_MAX_REFERRER_SCANS = 40  # each scan walks the whole heap: keep the search small


class _Sentinel:
    __slots__ = ("__weakref__",)


class LeakTracker:
    """Namespaces of retired versions, watched through weak references.

    A check runs in a thread of its own ``delay`` seconds after the last retirement: it needs a
    full garbage collection, which is kept off the reload itself.
    """

    def __init__(self, delay: float = 2.0, on_held: Callable[[int, Holder], object] | None = None) -> None:
        self.leaked: list[dict[str, Any]] = []
        self._on_held = on_held  # told who holds each leaked version (old code may be among it)
        self._delay = delay
        self._lock = threading.Lock()
        self._retired: list[tuple[int, dict[str, weakref.ref[_Sentinel]]]] = []
        # One long-lived checker thread, woken by retirements: a thread per retirement would
        # leave a malloc arena behind for each, and resident memory would creep up.
        self._wake = threading.Condition(self._lock)
        self._due: float | None = None
        self._closed = False
        self._thread: threading.Thread | None = None

    def track(self, version: int, modules: dict[str, ModuleType]) -> None:
        sentinels: dict[str, weakref.ref[_Sentinel]] = {}
        for name, module in modules.items():
            sentinel = _Sentinel()
            vars(module)[SENTINEL_NAME] = sentinel
            sentinels[name] = weakref.ref(sentinel)
        with self._lock:
            self._retired.append((version, sentinels))
            self._due = time.monotonic() + self._delay
            if self._thread is None or not self._thread.is_alive():
                self._thread = own_thread(self._run, "reload-middleware-leaks")
                self._thread.start()
            self._wake.notify()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._closed and (self._due is None or time.monotonic() < self._due):
                    self._wake.wait(None if self._due is None else max(0.0, self._due - time.monotonic()))
                if self._closed:
                    return
                self._due = None
            self.check()

    def check(self) -> list[dict[str, Any]]:
        """Collect garbage, forget what was freed, and describe (and log) what is still held."""
        with self._lock:
            retired, self._retired = self._retired, []
        if any(ref() is not None for _, refs in retired for ref in refs.values()):
            gc.collect()
        _release_free_memory()
        leaked: list[dict[str, Any]] = []
        holders: list[tuple[int, Holder]] = []
        still: list[tuple[int, dict[str, weakref.ref[_Sentinel]]]] = []
        for version, refs in retired:
            alive = {name: ref for name, ref in refs.items() if ref() is not None}
            if not alive:
                continue
            still.append((version, alive))
            holder = find_holder(next(iter(alive.values()))())
            held_by = holder.describe() if holder is not None else None
            leaked.append({"number": version, "modules": sorted(alive), "held_by": held_by})
            if holder is not None:
                holders.append((version, holder))
        with self._lock:
            self._retired = still + self._retired
        for leak in leaked:
            logger.warning(
                "version %d is retired but %d of its modules are still referenced (%s), held by: %s",
                leak["number"],
                len(leak["modules"]),
                ", ".join(leak["modules"][:5]),
                leak["held_by"] or "an unknown referrer",
            )
        self.leaked = leaked  # published after the log lines: whoever sees it finds them written
        if self._on_held is not None:
            for version, holder in holders:
                self._on_held(version, holder)
        return leaked


def _release_free_memory() -> None:
    """Give the heap pages the old version freed back to the system (glibc keeps them otherwise,
    and resident memory would stay at its high-water mark)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # only once something retires: importing the package stays cheap

    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return None


@dataclass(frozen=True)
class Holder:
    """Who holds a retired namespace: the global ``name`` of a live ``module``, then each object on
    the way down (``path``, outermost first, the namespace not included)."""

    module: str
    name: str
    path: tuple[object, ...]
    retired: str  # the name of the retired namespace the chain ends at

    def describe(self) -> str:
        root = f"{self.module}.{self.name}"
        return " -> ".join([root, *map(_describe, self.path), f"namespace of retired {self.retired}"])


def find_holder(sentinel: object) -> Holder | None:
    """Who holds the retired namespace that holds ``sentinel``."""
    live = {id(vars(module)): name for name, module in list(sys.modules.items()) if isinstance(module, ModuleType)}
    namespace = next((ref for ref in gc.get_referrers(sentinel) if isinstance(ref, dict)), None)
    if namespace is None:
        return None
    start_name = str(namespace.get("__name__", "?"))
    queue: deque[tuple[object, tuple[object, ...]]] = deque([(namespace, ())])
    seen = {id(namespace)}
    scans = 0
    while queue and scans < _MAX_REFERRER_SCANS:
        target, path = queue.popleft()
        scans += 1
        for referrer in gc.get_referrers(target):
            if id(referrer) in seen or isinstance(referrer, FrameType) or referrer is queue:
                continue
            seen.add(id(referrer))
            if id(referrer) in live:
                key = next((k for k, v in referrer.items() if v is target), "?")
                return Holder(live[id(referrer)], str(key), path, start_name)
            queue.append((referrer, (referrer, *path)))
    return None


def _describe(value: object) -> str:
    if isinstance(value, FunctionType):
        return f"function {value.__module__}.{value.__qualname__}"
    if isinstance(value, type):
        return f"class {value.__module__}.{value.__qualname__}"
    return type(value).__name__

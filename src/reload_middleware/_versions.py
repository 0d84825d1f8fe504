"""App versions: one object per build, the same for ASGI and WSGI, and the set of live ones.

A version counts its requests in flight, and among them those the server is *computing*: an HTTP
request from its start until its response starts, except while it waits for more of its body.
Only those hold a swap back; a request whose body is still arriving, a streamed response and a
websocket are paced by their client, who could otherwise freeze every reload.

The counters are changed by request threads (WSGI) or event loops (ASGI, one or several) and read
by the pipeline's thread, so each change takes the version's lock: two uncontended lock
operations per request, instead of a condition variable notified on every request.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

_DRAIN_POLL = 0.001


class Phase(str, enum.Enum):
    STARTING = "starting"
    SERVING = "serving"
    DRAINING = "draining"
    RETIRED = "retired"


class AppVersion:
    """An app built from one set of module objects.

    ``state`` is the lifespan state dict this version's startup filled in (``None`` without one);
    ``lifespan`` whatever the runtime needs to stop it; ``header`` the version response header,
    built once in the form the middleware sends it.
    """

    def __init__(self, number: int, app: Any, header: Any) -> None:
        self.number = number
        self.app = app
        self.header = header
        self.state: dict[str, Any] | None = None
        self.lifespan: Any = None
        self.phase = Phase.STARTING
        self.created = time.time()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.computing = 0
        # Long-lived connections (websockets, streamed responses): each with a callable that
        # closes it from any thread, for when this version must go.
        self.connections: dict[object, Callable[[], None]] = {}
        # The module objects the next version replaced: this version's own, once it retires.
        self.replaced: dict[str, ModuleType] = {}
        self.retire_by: float | None = None
        # What its build registered with atexit: unregistered when it retires.
        self.exit_callbacks: list[Callable[..., object]] = []

    def describe(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "state": self.phase.value,
            "in_flight": self.in_flight,
            "computing": self.computing,
            "long_lived": len(self.connections),
        }

    def wait_computed(self, timeout: float) -> bool:
        """Wait until the server computes no request of this version; ``False`` on ``timeout``.

        It polls every millisecond, and only during a drain: a condition variable would put a
        notification on every request's path instead.
        """
        deadline = time.monotonic() + timeout
        while self.computing > 0:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_DRAIN_POLL)
        return True

    def close_connections(self) -> int:
        """Close this version's long-lived connections (websockets with 1012); returns how many."""
        with self.lock:
            closers = list(self.connections.values())
        for close in closers:
            close()
        return len(closers)


class VersionSet:
    """The serving version and the old ones still finishing their requests."""

    def __init__(self, first: AppVersion) -> None:
        first.phase = Phase.SERVING
        self.current = first
        self.live = [first]
        self._lock = threading.Lock()

    def swap(self, new: AppVersion, replaced: dict[str, ModuleType], retire_timeout: float) -> AppVersion:
        """Make ``new`` the serving version; the old one, owner of the ``replaced`` modules, drains."""
        with self._lock:
            old = self.current
            old.replaced = replaced
            old.phase = Phase.DRAINING
            old.retire_by = time.monotonic() + retire_timeout
            new.phase = Phase.SERVING
            self.live.append(new)
            self.current = new  # the one attribute every request reads
        return old

    def draining(self) -> list[AppVersion]:
        with self._lock:
            return [version for version in self.live if version.phase is Phase.DRAINING]

    def remove(self, version: AppVersion) -> None:
        with self._lock:
            version.phase = Phase.RETIRED
            if version in self.live:
                self.live.remove(version)

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            live = list(self.live)
        return [version.describe() for version in live]

"""App versions: one object per build, the same for ASGI and WSGI, and the set of live ones.

A version knows the requests it serves through their ``Visit``: created when a request starts on
it, ended when the request ends. A visit is *computing* from its start until its response starts,
except while it waits for more of its body; only computing visits hold a swap back. A request
whose body is still arriving, a streamed response and a websocket are paced by their client, who
could otherwise freeze every reload. A long-lived visit (a websocket, a streamed response) can be
closed when its version must go.

Nothing outside this module changes what a version counts: a visit registers itself once and
unregisters once, so no path can leave a count behind (which would stall every later swap for
``drain_timeout``). Request threads (WSGI) and event loops (ASGI, one or several) register and
unregister; the pipeline's thread reads: two uncontended lock operations per request, and the
counts are computed only when the pipeline asks (a drain, a status).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

_DRAIN_POLL = 0.001
_CONNECTIONS_SHOWN = 20


class Phase(str, enum.Enum):
    STARTING = "starting"
    SERVING = "serving"
    DRAINING = "draining"
    RETIRED = "retired"


class Visit:
    """One request's stay on one version, from its start to ``end()``.

    It is *computing* until the client sets the pace: while it waits for more of its body
    (``paced``) and once its response started (``streaming``). Both are the request's own flags,
    set by its middleware without a call (they are on the per-request path). ``long_lived`` marks
    a connection (a websocket, a streamed response) that ``close()`` can end from any thread when
    its version must go; a subclass says how.
    """

    __slots__ = ("long_lived", "paced", "streaming", "version")

    def __init__(self, version: AppVersion, *, streaming: bool = False) -> None:
        self.version = version
        self.paced = False
        self.streaming = streaming
        self.long_lived = False
        with version._lock:
            version._visits[self] = None

    @property
    def computing(self) -> bool:
        return not (self.paced or self.streaming)

    def describe(self) -> dict[str, Any]:
        """What the status says of this visit while it is a long-lived connection."""
        return {"kind": "request"}

    def close(self) -> None:
        """End this long-lived connection (its version must go); any thread may call it."""

    def end(self) -> None:
        """The request is over (idempotent)."""
        version = self.version
        with version._lock:
            version._visits.pop(self, None)


class Stopping:
    """A version's lifespan shutdown, running on the server's event loop: ``done`` once it ended,
    ``error`` if it failed (or ran past its limit)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: str | None = None

    @classmethod
    def finished(cls) -> Stopping:
        """A version without a lifespan to stop."""
        stopping = cls()
        stopping.done.set()
        return stopping


class AppVersion:
    """An app built from one set of module objects.

    ``lifespan_state`` is the state dict this version's lifespan startup filled in (``None``
    without one); ``lifespan`` whatever the runtime needs to stop it; ``header`` the version
    response header, built once in the form the middleware sends it.
    """

    def __init__(self, number: int, app: Any, header: Any) -> None:
        self.number = number
        self.app = app
        self.header = header
        self.lifespan_state: dict[str, Any] | None = None
        self.lifespan: Any = None
        self.phase = Phase.STARTING
        self.created = time.time()
        self._lock = threading.Lock()
        self._visits: dict[Visit, None] = {}  # insertion-ordered, and O(1) to leave
        # The module objects the next version replaced: this version's own, once it retires.
        self.replaced: dict[str, ModuleType] = {}
        self.retire_by: float | None = None
        # What its build registered with atexit: unregistered when it retires.
        self.exit_callbacks: list[Callable[..., object]] = []
        self.stopping: Stopping | None = None  # its lifespan shutdown, once asked for

    def _visiting(self) -> list[Visit]:
        with self._lock:
            return list(self._visits)

    @property
    def in_flight(self) -> int:
        return len(self._visits)

    @property
    def computing(self) -> int:
        """Requests the server is computing: they hold a swap back."""
        return sum(visit.computing for visit in self._visiting())

    @property
    def long_lived(self) -> int:
        return sum(visit.long_lived for visit in self._visiting())

    def describe(self) -> dict[str, Any]:
        visits = self._visiting()
        return {
            "number": self.number,
            "state": "stopping" if self.stopping is not None else self.phase.value,
            "in_flight": len(visits),
            "computing": sum(visit.computing for visit in visits),
            "long_lived": sum(visit.long_lived for visit in visits),
            # Each runs this version's code until it closes: a websocket answers with it.
            "connections": [visit.describe() for visit in visits if visit.long_lived][:_CONNECTIONS_SHOWN],
        }

    def wait_computed(self, timeout: float) -> bool:
        """Wait until the server computes no request of this version; ``False`` on ``timeout``.

        It polls every millisecond, and only during a drain: a condition variable would put a
        notification on every request's path instead.
        """
        return _poll(lambda: self.computing == 0, timeout, _DRAIN_POLL)

    def wait_empty(self, timeout: float, poll: float) -> bool:
        """Wait until no request is in flight on this version; ``False`` on ``timeout``."""
        return _poll(lambda: not self._visits, timeout, poll)

    def close_connections(self) -> int:
        """Close this version's long-lived connections (websockets with 1012); returns how many."""
        connections = [visit for visit in self._visiting() if visit.long_lived]
        for visit in connections:
            visit.close()
        return len(connections)


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


def _poll(done: Callable[[], bool], timeout: float, interval: float) -> bool:
    """Look at ``done`` every ``interval`` until it holds (``True``) or ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True

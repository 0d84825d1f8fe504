"""App versions: one object per build, and the set of live ones with their retirement.

A version owns its app, its lifespan and the state that lifespan filled in, and counts its requests
in flight. After a swap, the old version (now also holding the module objects the new one
replaced) retires once its last request has ended, or ``retire_timeout`` ran out: its lifespan
shutdown runs once, then its modules are retired (hooks, framework caches, leak check).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from types import ModuleType
from typing import Any

from ._leaks import LeakTracker
from ._lifespan import Lifespan
from ._retire import retire_modules

logger = logging.getLogger("reload_middleware")

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
SERVICE_RESTART = 1012  # the websocket close code for "the server is restarting"


class VersionState(str, enum.Enum):
    STARTING = "starting"
    SERVING = "serving"
    DRAINING = "draining"
    RETIRED = "retired"


class AppVersion:
    """An app built from one set of module objects.

    ``state`` is the lifespan state dict this version's startup filled in; each of its requests
    gets a shallow copy, as a bare server would give. ``None`` when the server has none.
    """

    def __init__(self, number: int, app: Any, header: tuple[bytes, bytes] | None) -> None:
        self.number = number
        self.app = app
        self.state: dict[str, Any] | None = None
        self.header = header  # (name, value) of the version response header, built once
        self.lifespan: Lifespan | None = None
        self.phase = VersionState.STARTING
        self.created = time.time()
        self.in_flight = 0
        self.in_flight_http = 0
        self.websockets: set[Send] = set()
        # The module objects the next version replaced: this version's own, once it retires.
        self.replaced: dict[str, ModuleType] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._http_idle = asyncio.Event()
        self._http_idle.set()
        self._stopping: asyncio.Task[None] | None = None

    def enter(self, is_http: bool) -> None:
        if self.in_flight == 0:
            self._idle.clear()
        self.in_flight += 1
        if is_http:
            if self.in_flight_http == 0:
                self._http_idle.clear()
            self.in_flight_http += 1

    def leave(self, is_http: bool) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()
        if is_http:
            self.in_flight_http -= 1
            if self.in_flight_http == 0:
                self._http_idle.set()

    async def http_drained(self, timeout: float) -> bool:
        """Wait until no HTTP request runs here; ``False`` if ``timeout`` ran out first.

        Websockets and other long-lived connections do not hold a swap back: they carry on here.
        """
        return await _wait(self._http_idle, timeout)

    async def idle(self, timeout: float) -> bool:
        return await _wait(self._idle, timeout)

    async def close_websockets(self) -> None:
        for send in list(self.websockets):
            with contextlib.suppress(Exception):  # the client may be gone already
                await send({"type": "websocket.close", "code": SERVICE_RESTART, "reason": "new version"})

    async def stop(self, timeout: float) -> None:
        """Run this version's lifespan shutdown, once, however many callers ask."""
        if self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_task(self._stop(timeout))
        await asyncio.shield(self._stopping)

    async def _stop(self, timeout: float) -> None:
        self.phase = VersionState.RETIRED
        if self.lifespan is not None:
            await self.lifespan.shutdown(timeout)

    def describe(self) -> dict[str, Any]:
        return {"number": self.number, "state": self.phase.value, "in_flight": self.in_flight}


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        return False
    return True


class VersionSet:
    """The serving version, the old ones still finishing their requests, and their retirement."""

    def __init__(self, first: AppVersion, leaks: LeakTracker, *, retire_timeout: float, stop_timeout: float) -> None:
        first.phase = VersionState.SERVING
        self.current = first
        self.live = [first]
        self._retire_timeout = retire_timeout
        self._stop_timeout = stop_timeout
        self._retiring: set[asyncio.Task[None]] = set()
        self.leaks = leaks

    def swap(self, new: AppVersion, replaced: dict[str, ModuleType]) -> AppVersion:
        """Make ``new`` the serving version; the old one, owner of the ``replaced`` modules, retires
        in the background."""
        old = self.current
        old.replaced = replaced
        new.phase = VersionState.SERVING
        self.current = new
        self.live.append(new)
        old.phase = VersionState.DRAINING
        task = asyncio.get_running_loop().create_task(self._retire(old))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        return old

    async def wait_for_room(self, limit: int, timeout: float) -> bool:
        """Wait until fewer than ``limit`` versions are live; ``False`` if ``timeout`` ran out."""
        deadline = time.monotonic() + timeout
        while len(self.live) >= limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._retiring:
                return False
            await asyncio.wait(set(self._retiring), timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        return True

    async def _retire(self, version: AppVersion) -> None:
        if not await version.idle(self._retire_timeout):
            logger.warning(
                "version %d still has %d connection(s) after %g s: closing its websockets",
                version.number,
                version.in_flight,
                self._retire_timeout,
            )
            await version.close_websockets()
        try:
            await version.stop(self._stop_timeout)
        except Exception:
            logger.exception("lifespan shutdown of retired version %d failed", version.number)
        finally:
            self.live.remove(version)
            replaced, version.replaced = version.replaced, {}
            retire_modules(version.number, replaced, self.leaks)
            version.app = version.state = version.lifespan = None  # let the old module graph go
        logger.info("version %d retired", version.number)

    async def shutdown(self) -> str | None:
        """Server shutdown: stop every live version, newest first. Returns the first failure, if any."""
        self.leaks.close()
        for task in list(self._retiring):
            task.cancel()
        failure: str | None = None
        for version in sorted(self.live, key=lambda v: v.number, reverse=True):
            try:
                await version.stop(self._stop_timeout)
            except Exception as exc:
                failure = failure or f"version {version.number}: {exc}"
        return failure

"""One object per app version: its app, modules, lifespan state and in-flight count."""

from __future__ import annotations

import asyncio
import enum
import time
import weakref
from types import ModuleType
from typing import Any

from ._lifespan import Lifespan


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

    def __init__(self, number: int, app: Any, modules: dict[str, ModuleType], state: dict[str, Any] | None) -> None:
        self.number = number
        self.app = app
        self.modules = modules
        self.state = state
        self.lifespan: Lifespan | None = None
        # (name, value) of the version response header, precomputed once per version.
        self.header: tuple[bytes, bytes] | None = None
        self.phase = VersionState.STARTING
        self.created = time.time()
        self.in_flight = 0
        self.in_flight_http = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self, is_http: bool) -> None:
        self.in_flight += 1
        if is_http:
            self.in_flight_http += 1
            self._idle.clear()

    def leave(self, is_http: bool) -> None:
        self.in_flight -= 1
        if is_http:
            self.in_flight_http -= 1
            if self.in_flight_http == 0:
                self._idle.set()

    async def drained(self, timeout: float) -> bool:
        """Wait until no HTTP request runs on this version; ``False`` if ``timeout`` ran out first.

        Websockets and other long-lived connections do not hold a swap back: they carry on here.
        """
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def describe(self) -> dict[str, Any]:
        return {"number": self.number, "state": self.phase.value, "in_flight": self.in_flight}


class RetiredVersion:
    """What is left of a retired version: weak references that tell whether it was freed."""

    def __init__(self, version: AppVersion) -> None:
        self.number = version.number
        self._modules = [weakref.ref(module) for module in version.modules.values()]
        self.module_names = list(version.modules)

    def alive_modules(self) -> list[str]:
        return [name for name, ref in zip(self.module_names, self._modules, strict=True) if ref() is not None]

"""Drive one app version's ASGI lifespan from inside the middleware.

Modelled on asgi-lifespan's manager: a queue-fed ``receive``, events set on ``*.complete`` and
``*.failed``, every wait bounded, and a crash of the app releases every waiter.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import MutableMapping
from typing import Any

from ._errors import ReloadError

Message = MutableMapping[str, Any]


class LifespanUnsupported(ReloadError):
    """The app raised before finishing startup without saying it failed: per the ASGI spec it does
    not support lifespan. The original exception is the cause."""


class LifespanFailed(ReloadError):
    """The app reported ``lifespan.startup.failed`` or ``lifespan.shutdown.failed``, or timed out."""


class Lifespan:
    """One app's lifespan task: ``startup()`` once, ``shutdown()`` once."""

    def __init__(self, app: Any, scope: Message) -> None:
        self._app = app
        self._scope = scope
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._started = asyncio.Event()
        self._stopped = asyncio.Event()
        self._failure: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._crash: BaseException | None = None

    async def startup(self, timeout: float) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._queue.put({"type": "lifespan.startup"})
        await self._wait(self._started, "startup", timeout)

    async def shutdown(self, timeout: float) -> None:
        if self._task is None or self._task.done():
            return
        await self._queue.put({"type": "lifespan.shutdown"})
        await self._wait(self._stopped, "shutdown", timeout)
        # A conforming app returns after shutdown.complete; give it the same bound to do so.
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout)

    async def _wait(self, event: asyncio.Event, phase: str, timeout: float) -> None:
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            self._cancel()
            raise LifespanFailed(f"lifespan {phase} did not finish within {timeout:g} s") from None
        if self._failure is not None:
            raise LifespanFailed(self._failure or f"lifespan {phase} failed")
        if self._crash is not None:
            if phase == "startup":
                raise LifespanUnsupported(f"{type(self._crash).__name__}: {self._crash}") from self._crash
            raise self._crash

    def _cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _run(self) -> None:
        try:
            await self._app(self._scope, self._receive, self._send)
        except BaseException as exc:
            if self._failure is None:
                self._crash = exc
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            # Whatever happened, nobody may wait forever on an app that is gone.
            self._started.set()
            self._stopped.set()

    async def _receive(self) -> Message:
        return await self._queue.get()

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind in ("lifespan.startup.failed", "lifespan.shutdown.failed"):
            self._failure = str(message.get("message", ""))
        if kind.startswith("lifespan.startup."):
            self._started.set()
        elif kind.startswith("lifespan.shutdown."):
            self._stopped.set()

"""Drive app versions' ASGI lifespans from inside the middleware, on the server's event loop.

Modelled on asgi-lifespan's manager: a queue-fed ``receive``, events set on ``*.complete`` and
``*.failed``, every wait bounded, a crash releases every waiter; and "unsupported" only when the
app raised before it ever called ``receive()``. Everything runs through anyio, so asyncio and trio
servers alike; the pipeline's thread reaches the loop through the session's token.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, MutableMapping
from typing import Any, TypeVar

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel

from .._errors import ReloadError
from .._pipeline import AppVersion

Message = MutableMapping[str, Any]
T = TypeVar("T")


class LifespanUnsupported(ReloadError):
    """The app raised before it called ``receive()``: per the ASGI spec it does not support lifespan.
    The original exception is the cause."""


class LifespanFailed(ReloadError):
    """The app reported ``lifespan.startup.failed`` or ``lifespan.shutdown.failed``, raised during
    startup or shutdown, or took too long."""


class Lifespan:
    """One app version's lifespan task: ``startup()`` once, ``shutdown()`` once."""

    def __init__(self, app: Any, scope: Message) -> None:
        self._app = app
        self._scope = scope
        self._send_stream, self._receive_stream = anyio.create_memory_object_stream[Message](2)
        self._started = anyio.Event()
        self._stopped = anyio.Event()
        self._finished = anyio.Event()
        self._cancel_scope = anyio.CancelScope()
        self._receive_called = anyio.Event()
        self._failure: str | None = None
        self._crash: BaseException | None = None
        self._shutting_down = False

    async def begin(self, task_group: anyio.abc.TaskGroup, limit: float) -> None:
        """Start the app's lifespan task, until it waits for its first message.

        Raises:
            LifespanUnsupported: it raised before it ever called ``receive()``.
        """
        task_group.start_soon(self._run)
        with anyio.move_on_after(limit):
            async with anyio.create_task_group() as either:
                for event in (self._receive_called, self._finished):
                    either.start_soon(_set_then_cancel, event, either)
        if not self._receive_called.is_set() and self._crash is not None:
            crash = self._crash
            raise LifespanUnsupported(f"{type(crash).__name__}: {crash}") from crash

    async def startup(self, limit: float) -> None:
        await self._send_stream.send({"type": "lifespan.startup"})
        await self._wait(self._started, "startup", limit)

    async def shutdown(self, limit: float) -> None:
        """Run the shutdown once, however many callers ask (retirement and server shutdown may)."""
        if self._shutting_down or self._stopped.is_set():
            return
        self._shutting_down = True
        try:
            await self._send_stream.send({"type": "lifespan.shutdown"})
        except anyio.ClosedResourceError:
            return  # the app's lifespan has already returned
        await self._wait(self._stopped, "shutdown", limit)

    async def _wait(self, event: anyio.Event, phase: str, limit: float) -> None:
        with anyio.move_on_after(limit) as waited:
            await event.wait()
        if waited.cancelled_caught:
            self._cancel_scope.cancel()
            raise LifespanFailed(f"lifespan {phase} did not finish within {limit:g} s")
        if self._failure is not None:
            # An app that reports a failure usually raises right after (Starlette does): wait for
            # that, so that the server sees the very exception the bare app would have raised.
            with anyio.move_on_after(limit):
                await self._finished.wait()
            raise LifespanFailed(self._failure or f"lifespan {phase} failed") from self._crash
        if self._crash is not None:
            crash = self._crash
            if phase == "startup" and not self._receive_called.is_set():
                raise LifespanUnsupported(f"{type(crash).__name__}: {crash}") from crash
            raise LifespanFailed(f"lifespan {phase} raised {type(crash).__name__}: {crash}") from crash

    async def _run(self) -> None:
        try:
            with self._cancel_scope:
                await self._app(self._scope, self._receive, self._send)
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException as exc:  # reported to whoever waits, never raised into the task group
            self._crash = exc
        finally:
            # Whatever happened, nobody may wait forever on an app that is gone.
            self._started.set()
            self._stopped.set()
            self._finished.set()
            self._send_stream.close()
            self._receive_stream.close()

    async def _receive(self) -> Message:
        self._receive_called.set()
        return await self._receive_stream.receive()

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind in ("lifespan.startup.failed", "lifespan.shutdown.failed"):
            self._failure = str(message.get("message", ""))
        if kind.startswith("lifespan.startup."):
            self._started.set()
        elif kind.startswith("lifespan.shutdown."):
            self._stopped.set()


class LifespanSession:
    """The server's lifespan session: versions start and stop here, on the server's event loop.

    Every version, the first too, gets a copy of the server's lifespan scope and a state of its
    own: frameworks write into the scope (Starlette stores its app and router there), and what one
    version wrote must neither reach the next one nor keep it alive after it retired.
    """

    def __init__(self, scope: Message, task_group: anyio.abc.TaskGroup, timeout: float) -> None:
        self._scope = scope
        self._task_group = task_group
        self._timeout = timeout
        self._token = anyio.lowlevel.current_token()

    async def start(self, version: AppVersion, limit: float | None = None) -> None:
        """Begin and start a version's lifespan, within ``limit`` seconds (``startup_timeout`` by
        default). Raises ``LifespanUnsupported`` or ``LifespanFailed``."""
        await self.begin(version)
        try:
            await version.lifespan.startup(self._timeout if limit is None else limit)
        except BaseException:
            version.lifespan = None  # it never started: there is nothing to stop
            raise

    async def begin(self, version: AppVersion) -> None:
        """Start a version's lifespan task, until it waits for its startup message (sent apart for
        the first version, after the server's own: an app that raises at once does so before it
        is read, as the bare app would)."""
        scope = dict(self._scope)
        if "state" in scope:
            version.lifespan_state = scope["state"] = {}
        lifespan = Lifespan(version.app, scope)
        await lifespan.begin(self._task_group, self._timeout)
        version.lifespan = lifespan

    async def stop(self, version: AppVersion) -> None:
        if isinstance(version.lifespan, Lifespan):
            await version.lifespan.shutdown(self._timeout)

    def call(self, function: Callable[..., Coroutine[Any, Any, T]], *arguments: Any) -> T:
        """Run ``function(*arguments)`` on the session's loop, from another thread."""
        return anyio.from_thread.run(function, *arguments, token=self._token)

    def spawn(self, function: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start ``function()`` on the session's loop, from another thread, without waiting for it."""
        anyio.from_thread.run_sync(self._task_group.start_soon, function, token=self._token)


async def _set_then_cancel(event: anyio.Event, group: anyio.abc.TaskGroup) -> None:
    await event.wait()
    group.cancel_scope.cancel()

"""The ASGI runtime of app versions: the server's lifespan session, each version's start and stop
on the server's event loop (for the pipeline's thread), its warm-up, and ASGI 2 apps adapted.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from .._pipeline import AppVersion, Pipeline, Stopping
from .._types import Receive, Scope, Send
from .lifespan import LifespanFailed, LifespanSession, LifespanUnsupported
from .warmup import warm_up


async def _stop_all(session: LifespanSession, pipeline: Pipeline) -> LifespanFailed | None:
    """Server shutdown: stop every live version, newest first; the first failure, if any."""
    failure: LifespanFailed | None = None
    for version in sorted(pipeline.versions.live, key=lambda v: v.number, reverse=True):
        try:
            await session.stop(version)
        except LifespanFailed as exc:
            failure = failure or exc
    return failure


class AsgiRuntime:
    """Starts and stops versions on the server's event loop, for the pipeline's thread."""

    def __init__(self) -> None:
        self.session: LifespanSession | None = None
        self.backend = "asyncio"

    async def serve(self, scope: Scope, receive: Receive, send: Send, pipeline: Pipeline) -> None:
        """The server's lifespan session: version 1 starts with the server's startup, the pipeline
        starts with serving, and every live version stops at the server's shutdown."""
        versions, timeout = pipeline.versions, pipeline.config.startup_timeout
        # The warm-up runs on the backend the server runs: anyio's AsyncIOBackend or TrioBackend.
        self.backend = anyio.lowlevel.current_token().backend_class.__name__.removesuffix("Backend").lower()
        unsupported: LifespanUnsupported | None = None
        failure: LifespanFailed | None = None
        async with anyio.create_task_group() as task_group:
            session = LifespanSession(scope, task_group, timeout)
            try:
                await session.begin(versions.current)
                if (await receive())["type"] == "lifespan.startup":
                    # Not through a local name: this coroutine lives as long as the server, and
                    # would keep version 1 (its lifespan, its app, its modules) alive for good.
                    await versions.current.lifespan.startup(timeout)
            except LifespanUnsupported as exc:
                unsupported = exc
            except LifespanFailed as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                failure = exc
            if unsupported is None and failure is None:
                self.session = session
                pipeline.start()
                await send({"type": "lifespan.startup.complete"})
                await receive()  # lifespan.shutdown: the server is stopping
                self.session = None
                await anyio.to_thread.run_sync(pipeline.close)
                failure = await _stop_all(session, pipeline)
                if failure is None:
                    await send({"type": "lifespan.shutdown.complete"})
                else:
                    await send({"type": "lifespan.shutdown.failed", "message": str(failure)})
            task_group.cancel_scope.cancel()  # nothing of ours outlives the session
        if unsupported is not None:
            # Transparent: the server sees the same exception the bare app would have raised.
            pipeline.start()
            raise unsupported.__cause__ or unsupported from None
        if failure is not None and failure.__cause__ is not None:
            raise failure.__cause__  # as the bare app would: it reported the failure, then raised

    def start(self, version: AppVersion, timeout: float) -> None:
        session = self.session
        if session is None:
            return
        with contextlib.suppress(LifespanUnsupported):  # an app without lifespan has nothing to start
            session.call(session.start, version, timeout)

    def stop(self, version: AppVersion) -> None:
        session = self.session
        if session is not None and version.lifespan is not None:
            session.call(session.stop, version)

    def stop_soon(self, version: AppVersion) -> Stopping:
        """Start the version's lifespan shutdown on the server's loop; the caller does not wait."""
        session = self.session
        if session is None or version.lifespan is None:
            return Stopping.finished()
        stopping = Stopping()

        async def shut_down() -> None:
            try:
                await session.stop(version)
            except Exception as exc:  # LifespanFailed: it failed, or ran past startup_timeout
                stopping.error = str(exc) or type(exc).__name__
            finally:
                stopping.done.set()

        try:
            session.spawn(shut_down)
        except Exception as exc:  # the loop is gone (the server stops): nothing runs on it any more
            stopping.error = f"could not run: {type(exc).__name__}: {exc}"
            stopping.done.set()
        return stopping

    def warm_up(self, version: AppVersion, timeout: float) -> None:
        warm_up(version.app, version.lifespan_state, timeout, self.backend)

    @staticmethod
    def adapt(app: Any) -> Any:
        """An ASGI 3 callable for ``app``; an ASGI 2 (double-callable) app is accepted as uvicorn
        accepts it."""
        if inspect.isclass(app):
            is_asgi3 = hasattr(app, "__await__")
        elif inspect.isroutine(app):
            is_asgi3 = inspect.iscoroutinefunction(app)
        else:
            is_asgi3 = inspect.iscoroutinefunction(type(app).__call__)
        return app if is_asgi3 else _ASGI2App(app)


class _ASGI2App:
    """``app(scope)`` returns an instance; ``await instance(receive, send)`` serves it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        instance = self.app(scope)
        await instance(receive, send)

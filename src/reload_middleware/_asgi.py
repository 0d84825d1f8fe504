"""ASGI middleware: route each request to the serving app version and count it.

The per-request path is one attribute read (``pipeline.gate``), an in-flight count and a call;
reloading itself belongs to the pipeline (``_pipeline.py``), shared with the WSGI middleware.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from ._admin import AdminRequest, AdminResponse
from ._config import Options, Unpack
from ._lifespan import LifespanFailed, LifespanSession, LifespanUnsupported
from ._live import SCRIPT, script_response_headers, stream_events
from ._pipeline import Pipeline
from ._types import ASGIApp, Message, Receive, Scope, Send
from ._versions import AppVersion
from ._warmup import warm_up
from ._wrapping import Wrapping

SERVICE_RESTART = 1012  # the websocket close code for "the server is restarting"


class ReloadMiddleware(Wrapping[ASGIApp]):
    """Serve an ASGI app and swap in a freshly imported version whenever its source changes.

    Args:
        app: ``"module:attribute"`` (preferred), or the app object, whose defining module is looked up.
        enabled: overrides ``RELOAD_MIDDLEWARE``; when off, this is a pure pass-through.
        factory: the import string names a callable that returns the app.
        watch: watch files and reload by itself (``RELOAD_MIDDLEWARE_WATCH``); off, only a ``POST``
            to the admin endpoint reloads, and no request ever waits for a build.
        watch_dirs: directories whose modules are reloadable; default: the project root (the ``sys.path``
            entry that holds the app's top-level package), as ``uvicorn --reload`` watches.
        exclude: glob patterns of files never reloaded.
        admin_path: path of the admin endpoint, ``None`` for none.
        token: bearer token the admin endpoint requires (``RELOAD_MIDDLEWARE_TOKEN``).
        version_header: response header naming the serving version, ``None`` for none.
        build_timeout: seconds a build (importing the changed modules) may take; past it the build
            is stopped and the old version serves on. In watch mode it is also the longest a
            request waits for a new version.
        drain_timeout: seconds a swap waits for the old version's requests the server is still
            computing (never for uploads, streamed responses or websockets: their client sets the pace).
        startup_timeout: seconds a version's lifespan startup (or shutdown) may take.
        retire_timeout: seconds an old version may keep long-lived connections (streams,
            websockets) open; then its websockets are closed with code 1012 and it retires.
        overlap: swap at once, without waiting for the old version's requests to finish.
        max_versions: how many versions may be alive at once; beyond that the oldest one's
            long-lived connections are closed and it retires.
        error_page: while the latest reload is broken, show browsers an error page (API clients
            get the old version and an ``x-reload-error`` header).
        warmup: before the swap, send the new app one request that matches no route, so that
            lazy route set-up (FastAPI) is not paid by a user.
        live_refresh: pages served to a browser get a small script that reloads them after each
            successful reload and shows the error while the latest reload is failing.
        environ: the environment to read, ``os.environ`` by default.

    Every option but ``enabled``, ``factory`` and ``environ`` can also come from its
    ``RELOAD_MIDDLEWARE_*`` environment variable; an explicit option wins.
    """

    def __init__(
        self,
        app: str | ASGIApp,
        *,
        enabled: bool | None = None,
        factory: bool = False,
        environ: Mapping[str, str] | None = None,
        **options: Unpack[Options],
    ) -> None:
        self._wrap(app, enabled, factory, environ, options)

    def _runtime(self) -> AsgiRuntime:
        self._lifespans = AsgiRuntime()
        return self._lifespans

    @staticmethod
    def _version_header(name: str, number: int) -> tuple[bytes, bytes]:
        return (name.encode("latin-1"), str(number).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled:
            await self._bare(scope, receive, send)
            return
        kind = scope["type"]
        if kind == "lifespan":
            await self._serve_lifespan(scope, receive, send)
            return
        live = self._live
        if kind == "http":
            path = _app_path(scope)
            if path == self._admin_path:
                await self._serve_admin(scope, send)
                return
            if live is not None and path in (live.script_path, live.events_path):
                await self._serve_live(scope, send, path == live.script_path)
                return
        pipeline = self._pipeline
        if not pipeline.started:
            pipeline.start()
        gate = pipeline.gate
        if gate is not None:
            await anyio.to_thread.run_sync(gate.hold, self._wait_limit, abandon_on_cancel=True)
        if pipeline.failing is not None and kind == "http":
            answer = self._admin.while_failing(AdminRequest.from_scope(scope), pipeline.failing)
            if isinstance(answer, AdminResponse):
                await _respond(send, answer)
                return
            name, value = answer
            send = _adding_header(send, "http.response.start", (name.encode(), value.encode("latin-1")))
        version = pipeline.versions.current
        if version.state is not None:
            scope = {**scope, "state": dict(version.state)}
        if live is not None and kind == "http" and live.wants(scope):
            scope, send = live.prepare(scope, send, version.number)
        if kind == "http":
            exchange = _HttpExchange(version, receive, send)
            try:
                await version.app(scope, exchange.receive, exchange.send)
            finally:
                exchange.end()
        elif kind == "websocket":
            websocket = _WebsocketExchange(version, send)
            try:
                await version.app(scope, receive, websocket.send)
            finally:
                websocket.end()
        else:
            await version.app(scope, receive, send)

    async def _serve_admin(self, scope: Scope, send: Send) -> None:
        request = AdminRequest.from_scope(scope)
        # A POST waits for a reload: off the event loop, which keeps serving meanwhile.
        response = await anyio.to_thread.run_sync(self._admin.handle, request, abandon_on_cancel=True)
        await _respond(send, response)

    async def _serve_live(self, scope: Scope, send: Send, script: bool) -> None:
        """Live refresh's script, or its event stream (under the admin endpoint's access rules)."""
        decision = self._admin.read_access(AdminRequest.from_scope(scope))
        if isinstance(decision, AdminResponse):
            await _respond(send, decision)
        elif script:
            await send({"type": "http.response.start", "status": 200, "headers": script_response_headers()})
            await send({"type": "http.response.body", "body": SCRIPT.encode()})
        else:
            await stream_events(send, lambda: self._live_state(full=decision))

    async def _serve_lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        pipeline = self._pipeline
        # The warm-up runs on the backend the server runs: anyio's AsyncIOBackend or TrioBackend.
        self._lifespans.backend = anyio.lowlevel.current_token().backend_class.__name__.removesuffix("Backend").lower()
        unsupported: LifespanUnsupported | None = None
        failure: LifespanFailed | None = None
        async with anyio.create_task_group() as task_group:
            session = LifespanSession(scope, task_group, self.config.startup_timeout)
            try:
                await session.begin(pipeline.versions.current)
                if (await receive())["type"] == "lifespan.startup":
                    # Not through a local name: this coroutine lives as long as the server, and
                    # would keep version 1 (its lifespan, its app, its modules) alive for good.
                    await pipeline.versions.current.lifespan.startup(self.config.startup_timeout)
            except LifespanUnsupported as exc:
                unsupported = exc
            except LifespanFailed as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                failure = exc
            if unsupported is None and failure is None:
                self._lifespans.session = session
                pipeline.start()
                await send({"type": "lifespan.startup.complete"})
                await receive()  # lifespan.shutdown: the server is stopping
                self._lifespans.session = None
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

    def start(self, version: AppVersion) -> None:
        session = self.session
        if session is None:
            return
        with contextlib.suppress(LifespanUnsupported):  # an app without lifespan has nothing to start
            session.call(session.start, version)

    def stop(self, version: AppVersion) -> None:
        session = self.session
        if session is not None and version.lifespan is not None:
            session.call(session.stop, version)

    def warm_up(self, version: AppVersion, timeout: float) -> None:
        warm_up(version.app, version.state, timeout, self.backend)

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


class _HttpExchange:
    """One HTTP request's accounting: in flight until it ends, computing until its response starts
    (except while it waits for its body), and closable once it streams."""

    __slots__ = ("_closed", "_computing", "_receive", "_send", "_version")

    def __init__(self, version: AppVersion, receive: Receive, send: Send) -> None:
        self._version = version
        self._receive = receive
        self._send = send
        self._computing = True
        self._closed = False
        with version.lock:
            version.in_flight += 1
            version.computing += 1

    async def receive(self) -> Message:
        if not self._computing:
            return await self._receive()
        version = self._version
        with version.lock:
            version.computing -= 1  # the client sets the pace of its body
        try:
            return await self._receive()
        finally:
            with version.lock:
                version.computing += 1

    async def send(self, message: Message) -> None:
        version = self._version
        if message["type"] == "http.response.start":
            if version.header is not None:
                message["headers"] = [*message.get("headers", ()), version.header]
            if self._computing:
                self._computing = False
                with version.lock:
                    version.computing -= 1
        elif self._closed:
            raise OSError(f"the stream was closed: version {version.number} of the app was retired")
        elif message.get("more_body") and self not in version.connections:
            with version.lock:
                version.connections[self] = self._close
        await self._send(message)

    def _close(self) -> None:
        self._closed = True

    def end(self) -> None:
        version = self._version
        with version.lock:
            version.in_flight -= 1
            if self._computing:
                version.computing -= 1
            version.connections.pop(self, None)


class _WebsocketExchange:
    """A websocket: long-lived from the start, closed with 1012 if its version must go."""

    __slots__ = ("_send", "_token", "_version")

    def __init__(self, version: AppVersion, send: Send) -> None:
        self._version = version
        self._send = send
        self._token = anyio.lowlevel.current_token()
        with version.lock:
            version.in_flight += 1
            version.connections[self] = self._close

    async def send(self, message: Message) -> None:
        if message["type"] == "websocket.accept" and self._version.header is not None:
            message["headers"] = [*message.get("headers", ()), self._version.header]
        await self._send(message)

    def _close(self) -> None:  # from the pipeline's thread
        with contextlib.suppress(Exception):  # the client, or the loop, may be gone already
            anyio.from_thread.run(self._send_close, token=self._token)

    async def _send_close(self) -> None:
        await self._send({"type": "websocket.close", "code": SERVICE_RESTART, "reason": "new version"})

    def end(self) -> None:
        version = self._version
        with version.lock:
            version.in_flight -= 1
            version.connections.pop(self, None)


def _adding_header(send: Send, on: str, header: tuple[bytes, bytes]) -> Send:
    async def send_with_header(message: Message) -> None:
        if message["type"] == on:
            message["headers"] = [*message.get("headers", ()), header]
        await send(message)

    return send_with_header


def _app_path(scope: Scope) -> str:
    """The path within the app: behind a prefix (``--root-path``) the scope's path carries it, as
    the ASGI spec has it."""
    path: str = scope["path"]
    root = scope.get("root_path")
    return path[len(root) :] if root and path.startswith(root) else path


async def _respond(send: Send, response: AdminResponse) -> None:
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.all_headers()]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})

"""ASGI middleware: route each request to the current app version, reload between requests.

The per-request path is a flag check, an in-flight count and a call; everything that scales with
the number of modules runs in the watcher thread or inside a reload.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from ._admin import Admin, AdminRequest, AdminResponse
from ._config import Options, Unpack
from ._errors import ReloadError
from ._lifespan import Lifespan, LifespanFailed, LifespanUnsupported
from ._loader import LoadedGroup
from ._page import error_page, error_summary
from ._reloader import Plan, elapsed_ms, prepare
from ._versions import AppVersion, VersionSet
from ._watch import Watcher

logger = logging.getLogger("reload_middleware")

WARMUP_PATH = "/__reload_middleware_warmup__"
WARMUP_TIMEOUT = 5.0

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ReloadMiddleware:
    """Serve an ASGI app and swap in a freshly imported version whenever its source changes.

    Args:
        app: ``"module:attribute"`` (preferred), or the app object, whose defining module is looked up.
        enabled: overrides ``RELOAD_MIDDLEWARE``; when off, this is a pure pass-through.
        factory: the import string names a callable that returns the app.
        watch: watch files and reload by itself (``RELOAD_MIDDLEWARE_WATCH``); off, only a ``POST``
            to the admin endpoint reloads.
        watch_dirs: directories whose modules are reloadable; default: the app's top-level package.
        exclude: glob patterns of files never reloaded.
        admin_path: path of the admin endpoint, ``None`` for none.
        token: bearer token the admin endpoint requires (``RELOAD_MIDDLEWARE_TOKEN``).
        version_header: response header naming the serving version, ``None`` for none.
        drain_timeout: seconds a swap waits for the old version's HTTP requests to finish.
        startup_timeout: seconds a version's lifespan startup (or shutdown) may take.
        retire_timeout: seconds an old version may keep long-lived connections (streams,
            websockets) open; then its websockets are closed with code 1012 and it retires.
        overlap: swap at once, without waiting for the old version's requests to finish.
        max_versions: how many versions may be alive at once; a reload beyond that waits (up to
            ``drain_timeout``) for an old one to retire, then fails.
        error_page: while the latest reload is broken, show browsers an error page (API clients
            get the old version and an ``x-reload-error`` header).
        warmup: before the swap, send the new app one request that matches no route, so that
            lazy route set-up (FastAPI) is not paid by a user.
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
        self.app: ASGIApp
        self.app, reloader = prepare(app, enabled=enabled, factory=factory, environ=environ, options=options)
        self.enabled = reloader is not None
        if reloader is None:
            return
        self._reloader = reloader
        self.config = reloader.config
        self._detector = self._reloader.detector
        self._admin = Admin(self.config.token, self.config.admin_path or "")
        self._header_name = self.config.version_header.encode("latin-1") if self.config.version_header else None
        self._versions = VersionSet(
            self._new_version(1, self.app),
            self._reloader.leaks,
            retire_timeout=self.config.retire_timeout,
            stop_timeout=self.config.startup_timeout,
        )
        self._lock = asyncio.Lock()
        self._reloading: asyncio.Task[dict[str, Any]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watcher: Watcher | None = None
        self._lifespan_scope: Scope | None = None

    def _new_version(self, number: int, app: ASGIApp) -> AppVersion:
        header = (self._header_name, str(number).encode()) if self._header_name else None
        return AppVersion(number, app, header)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled:
            await self.app(scope, receive, send)
            return
        kind = scope["type"]
        if kind == "lifespan":
            await self._serve_lifespan(scope, receive, send)
            return
        if kind == "http" and scope["path"] == self.config.admin_path:
            await self._serve_admin(scope, receive, send)
            return
        if self._loop is None:
            self._start_watching()
        if self._detector.dirty or self._reloading is not None:
            await self._reload_settled()
        if self._reloader.failing is not None and kind == "http":
            failing_send = await self._while_failing(self._reloader.failing, scope, send)
            if failing_send is None:
                return
            send = failing_send
        version = self._versions.current
        is_http = kind == "http"
        if version.state is not None:
            scope = {**scope, "state": dict(version.state)}
        header = version.header
        if header is not None and kind in ("http", "websocket"):
            marker = "http.response.start" if is_http else "websocket.accept"

            async def send_with_version(message: Message) -> None:
                if message["type"] == marker:
                    message["headers"] = [*message.get("headers", ()), header]
                await send(message)

            target: Send = send_with_version
        else:
            target = send
        if kind == "websocket":
            version.websockets.add(send)
        version.enter(is_http)
        try:
            await version.app(scope, receive, target)
        finally:
            version.leave(is_http)
            version.websockets.discard(send)

    async def _while_failing(self, error: dict[str, Any], scope: Scope, send: Send) -> Send | None:
        """The latest reload failed: a browser gets the error page (``None``: it was sent), an API
        client the old version plus a header that says so."""
        accept = next((value for name, value in scope.get("headers", ()) if name == b"accept"), b"")
        if b"text/html" in accept:
            body = error_page(error, self.config.admin_path or "").encode()
            headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return None
        header = (b"x-reload-error", error_summary(error).encode("latin-1"))

        async def send_with_error(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        return send_with_error

    # -- reloading -------------------------------------------------------------------------------

    async def _reload_settled(self) -> None:
        """Wait for the reload in progress, or start one for the change just detected."""
        for _ in range(2):  # a change noticed during a reload gets one more; then serve
            if self._reloading is None and not self._detector.dirty:
                return
            await asyncio.shield(self._reload_task())

    def _reload_task(self, *, force: bool = False, sweep: bool = False) -> asyncio.Task[dict[str, Any]]:
        if self._reloading is None or force or sweep:
            task = asyncio.get_running_loop().create_task(self.reload(force=force, sweep=sweep))
            self._reloading = task

            def clear(done: asyncio.Task[dict[str, Any]]) -> None:
                if self._reloading is done:
                    self._reloading = None

            task.add_done_callback(clear)
        return self._reloading

    async def reload(self, *, force: bool = False, sweep: bool = False) -> dict[str, Any]:
        """Check for changes and reload now: detect, plan, load, start, drain, swap, retire.

        Returns the admin endpoint's answer: ``ok``, ``version``, ``reloaded``, ``duration_ms``, ``error``.
        """
        async with self._lock:
            started = time.perf_counter()
            reloader = self._reloader
            versions = self._versions
            try:
                if not await versions.wait_for_room(self.config.max_versions, self.config.drain_timeout):
                    raise ReloadError(
                        f"{len(versions.live)} versions are still running requests "
                        f"(max_versions={self.config.max_versions}); try again when they have finished"
                    )
                # The build runs in a worker thread, so that requests in flight on the old version
                # (streams, websockets) keep flowing while the new modules import.
                loaded = await asyncio.to_thread(self._plan_and_build, force, sweep)
                if loaded is None:
                    return self._outcome(True, [], started, None)
                plan, group = loaded
            except Exception as exc:
                return self._outcome(False, [], started, reloader.fail(exc).as_dict())
            version = self._new_version(versions.current.number + 1, group.app)
            try:
                await self._start(version)
            except LifespanUnsupported:
                pass  # an app without lifespan support simply has nothing to start
            except Exception as exc:
                group.rollback()
                return self._outcome(False, [], started, reloader.fail(exc).as_dict())
            if self.config.warmup:
                await self._warm_up(version)
            record = reloader.commit(plan, group, version.number, elapsed_ms(started))
            # Drain first: new arrivals wait on this reload while the old version's requests finish.
            if not self.config.overlap and not await versions.current.http_drained(self.config.drain_timeout):
                logger.warning(
                    "version %d still had requests after %g s; swapping anyway",
                    versions.current.number,
                    self.config.drain_timeout,
                )
            versions.swap(version, group.old_modules)
            self.app = version.app
            return self._outcome(True, record.modules, started, None)

    def _plan_and_build(self, force: bool, sweep: bool) -> tuple[Plan, LoadedGroup] | None:
        plan = self._reloader.plan(force=force, sweep=sweep)
        return None if plan is None else (plan, self._reloader.build(plan))

    def _outcome(self, ok: bool, modules: list[str], started: float, error: Any) -> dict[str, Any]:
        return self._reloader.outcome(ok, self._versions.current.number, modules, started, error)

    async def _start(self, version: AppVersion) -> None:
        """Run a version's lifespan startup with a scope and a state of its own.

        Every version, the first too, gets a copy of the server's lifespan scope: frameworks write
        into it (Starlette stores its app and router there), and what one version wrote must
        neither reach the next one nor keep it alive after it retired.

        Raises:
            LifespanUnsupported: the app does not do lifespan; it starts without.
            LifespanFailed: the app reported a failed startup, or took too long.
        """
        if self._lifespan_scope is None:
            return
        scope = dict(self._lifespan_scope)
        if "state" in scope:
            version.state = scope["state"] = {}
        lifespan = Lifespan(version.app, scope)
        await lifespan.startup(self.config.startup_timeout)
        version.lifespan = lifespan

    async def _warm_up(self, version: AppVersion) -> None:
        """Send the new app one request for a path no route matches, before it serves anyone.

        Frameworks that set routes up lazily (FastAPI compiles each route on its first match) then
        do it here rather than on a user's first request: 58 ms for 64 routers, measured. No
        endpoint runs: the answer is a 404, and it is thrown away.
        """
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": WARMUP_PATH,
            "raw_path": WARMUP_PATH.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"reload-middleware-warmup")],
            "client": ("127.0.0.1", 0),
            "server": ("127.0.0.1", 0),
        }
        if version.state is not None:
            scope["state"] = dict(version.state)

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            pass

        try:
            await asyncio.wait_for(version.app(scope, receive, send), WARMUP_TIMEOUT)
        except Exception as exc:  # a warm-up is a favour: it never fails a reload
            logger.debug("warm-up request of version %d failed: %r", version.number, exc)

    # -- watching --------------------------------------------------------------------------------

    def _start_watching(self) -> None:
        """Start the watcher thread: for edited files (unless watching is off), and always for
        the trigger that other worker processes fire."""
        self._loop = loop = asyncio.get_running_loop()

        def on_change() -> None:  # in the watcher thread
            loop.call_soon_threadsafe(self._on_change_detected)

        def on_trigger() -> None:  # in the watcher thread
            loop.call_soon_threadsafe(self._on_trigger)

        self._watcher = self._reloader.watcher(on_change, on_trigger)
        self._watcher.start()

    def _on_change_detected(self) -> None:
        if self._detector.dirty:
            self._reload_task()

    def _on_trigger(self) -> None:
        signal = self._reloader.trigger.take()
        if signal is not None:
            logger.info("another worker asked for a reload%s", " of everything" if signal.force else "")
            self._reload_task(force=signal.force, sweep=True)

    # -- lifespan --------------------------------------------------------------------------------

    async def _serve_lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        self._lifespan_scope = scope
        try:
            await self._start(self._versions.current)
        except LifespanUnsupported as exc:
            # Transparent: the server sees the same exception the bare app would have raised.
            self._lifespan_scope = None
            self._start_watching()
            raise exc.__cause__ or exc from None
        except LifespanFailed as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        self._start_watching()
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown: the server is stopping
        if self._watcher is not None:
            self._watcher.stop()
        failure = await self._versions.shutdown()
        if failure is None:
            await send({"type": "lifespan.shutdown.complete"})
        else:
            await send({"type": "lifespan.shutdown.failed", "message": failure})

    # -- admin -----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        listening = self._watcher is not None and self._watcher.running
        versions = [version.describe() for version in self._versions.live]
        return self._reloader.status(self._versions.current.number, versions, listening)

    async def _serve_admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", ()):
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        client = scope.get("client")
        request = AdminRequest(
            method=scope["method"],
            query_string=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            client_host=client[0] if client else None,
            has_body=headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers,
        )
        response = self._admin.refusal(request)
        if response is None:
            force = self._admin.parse_force(request)
            if isinstance(force, AdminResponse):
                response = force
            elif request.method == "GET":
                response = self._admin.render_status(request, self.status())
            else:
                outcome = await asyncio.shield(self._reload_task(force=force, sweep=True))
                self._reloader.tell_other_workers(force)
                response = self._admin.render_reload(request, outcome)
        header = self._versions.current.header
        extra = [(header[0], header[1])] if header else []
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.all_headers()] + extra,
            }
        )
        await send({"type": "http.response.body", "body": response.body})

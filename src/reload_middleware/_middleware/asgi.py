"""ASGI middleware: route each request to the serving app version and count it.

The per-request path reads a few attributes (the gate, the failing report, the serving version),
counts the request on its version and calls it; reloading itself belongs to the pipeline
(``_pipeline``), shared with the WSGI middleware.
"""

from __future__ import annotations

import anyio
import anyio.to_thread

from .._admin import AdminRequest, AdminResponse, live
from .._types import ASGIApp, Message, Receive, Scope, Send
from .base import ARGUMENTS, Wrapping
from .exchanges import HttpExchange, WebsocketExchange
from .runtime import AsgiRuntime
from .unavailable import unavailable_asgi


class ReloadMiddleware(Wrapping[ASGIApp]):
    # The docstring lists every option from its one declaration (``_config``).
    __doc__ = f"""Serve an ASGI app and swap in a freshly imported version whenever its source changes.

    Every option but ``enabled``, ``factory`` and ``environ`` can also come from its
    ``RELOAD_MIDDLEWARE_*`` environment variable; an explicit option wins.

{ARGUMENTS}
    """

    def _runtime(self) -> AsgiRuntime:
        self._lifespans = AsgiRuntime()
        return self._lifespans

    @staticmethod
    def _unavailable(error: str) -> ASGIApp:
        return unavailable_asgi(error)

    @staticmethod
    def _version_header(name: str, number: int) -> tuple[bytes, bytes]:
        return (name.encode("latin-1"), str(number).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled:
            await self._bare(scope, receive, send)
            return
        if scope["type"] != "http":
            await self._serve_other(scope, receive, send)
            return
        path = _app_path(scope) if scope.get("root_path") else scope["path"]
        if path in self._own_paths:
            await self._serve_own(scope, send, path)
            return
        if self._queue.gate is not None or self._history.failing is not None or not self._worker.started:
            admitted = await self._admit(scope, send, http=True)
            if admitted is None:
                return  # answered: the error page
            send = admitted
        version = self._versions.current
        if version.lifespan_state is not None:
            scope = {**scope, "state": dict(version.lifespan_state)}  # its own state, as the app expects
        if self._live is not None and self._live.wants(scope):  # a page a browser navigates to
            scope, send = self._live.prepare(scope, send, version.number)
        exchange = HttpExchange(version, receive, send, scope.get("path", ""))
        try:
            await version.app(scope, exchange.receive, exchange.send)
        finally:
            exchange.end()

    async def _admit(self, scope: Scope, send: Send, *, http: bool) -> Send | None:
        """Before a request goes to the serving version: start the pipeline in this (serving)
        process, wait for a reload under way, and, while the latest reload is failing, answer a
        browser with the error page (``None``: answered) or mark an API answer with a header."""
        if not self._worker.started:
            self._pipeline.start()
        gate = self._queue.gate
        if gate is not None:
            await anyio.to_thread.run_sync(gate.hold, self._wait_limit, abandon_on_cancel=True)
        failing = self._history.failing
        if failing is None or not http:
            return send
        answer = self._admin.while_failing(AdminRequest.from_scope(scope), failing)
        if isinstance(answer, AdminResponse):
            await _respond(send, answer)
            return None
        name, value = answer
        return _adding_header(send, "http.response.start", (name.encode(), value.encode("latin-1")))

    async def _serve_other(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Lifespan, websockets, and scope types this middleware does not know (passed through)."""
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespans.serve(scope, receive, send, self._pipeline)
            return
        await self._admit(scope, send, http=False)
        version = self._versions.current
        if version.lifespan_state is not None:
            scope = {**scope, "state": dict(version.lifespan_state)}
        if kind != "websocket":
            await version.app(scope, receive, send)
            return
        websocket = WebsocketExchange(version, send, scope.get("path", ""))
        try:
            await version.app(scope, receive, websocket.send)
        finally:
            websocket.end()

    async def _serve_own(self, scope: Scope, send: Send, path: str) -> None:
        """The admin endpoint, or live refresh's script and event stream (under the admin
        endpoint's access rules)."""
        request = AdminRequest.from_scope(scope)
        if path == self._admin_path:
            # A POST waits for a reload: off the event loop, which keeps serving meanwhile.
            response = await anyio.to_thread.run_sync(self._admin.handle, request, abandon_on_cancel=True)
            await _respond(send, response)
            return
        decision = self._admin.read_access(request)
        if isinstance(decision, AdminResponse):
            await _respond(send, decision)
        elif self._live is not None and path == self._live.script_path:
            await send({"type": "http.response.start", "status": 200, "headers": live.script_response_headers()})
            await send({"type": "http.response.body", "body": live.SCRIPT.encode()})
        else:
            await live.stream_events(send, lambda: self._live_state(full=decision))


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

"""ASGI requests as visits of a version: an HTTP exchange and a websocket, each counting itself on
the version it started on (``Visit``) and adding the version header to its response.

These are on the per-request path: flags are set as attributes, and an HTTP request costs five
calls of ours beyond the middleware's own (two to count it, one per send, one at its end).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import anyio.from_thread
import anyio.lowlevel

from .._pipeline import AppVersion, Visit
from .._types import Message, Receive, Send

SERVICE_RESTART = 1012  # the websocket close code for "the server is restarting"


class HttpExchange(Visit):
    """One HTTP request: computing until its response starts (except while it waits for its
    body), then long-lived while it streams, and closable once it does."""

    __slots__ = ("_closed", "_path", "_receive", "_send")

    def __init__(self, version: AppVersion, receive: Receive, send: Send, path: str = "") -> None:
        self._receive = receive
        self._send = send
        self._closed = False
        self._path = path
        super().__init__(version)

    def describe(self) -> dict[str, Any]:
        return {"kind": "stream" if self.long_lived else "request", "path": self._path}

    async def receive(self) -> Message:
        if self.streaming:
            return await self._receive()
        self.paced = True  # the client sets the pace of its body
        try:
            return await self._receive()
        finally:
            self.paced = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            header = self.version.header
            if header is not None:
                message["headers"] = [*message.get("headers", ()), header]
            self.streaming = True
        elif self._closed:
            raise OSError(f"the stream was closed: version {self.version.number} of the app was retired")
        elif message.get("more_body"):
            self.long_lived = True
        await self._send(message)

    def close(self) -> None:
        self._closed = True


class WebsocketExchange(Visit):
    """A websocket: long-lived from the start, closed with 1012 if its version must go."""

    __slots__ = ("_opened", "_path", "_send", "_token")

    def __init__(self, version: AppVersion, send: Send, path: str = "") -> None:
        self._send = send
        self._token = anyio.lowlevel.current_token()
        self._path = path
        self._opened = time.monotonic()
        super().__init__(version, streaming=True)
        self.long_lived = True

    def describe(self) -> dict[str, Any]:
        return {"kind": "websocket", "path": self._path, "open_s": round(time.monotonic() - self._opened, 1)}

    async def send(self, message: Message) -> None:
        if message["type"] == "websocket.accept" and self.version.header is not None:
            message["headers"] = [*message.get("headers", ()), self.version.header]
        await self._send(message)

    def close(self) -> None:  # from the pipeline's thread
        with contextlib.suppress(Exception):  # the client, or the loop, may be gone already
            anyio.from_thread.run(self._send_close, token=self._token)

    async def _send_close(self) -> None:
        await self._send({"type": "websocket.close", "code": SERVICE_RESTART, "reason": "new version"})

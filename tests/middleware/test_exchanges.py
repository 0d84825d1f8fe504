"""ASGI requests counted on their version, in-process: computing until the response starts (but
not while the body is awaited), long-lived once it streams, closed when its version must go."""

from __future__ import annotations

import anyio
import pytest

from reload_middleware._middleware.exchanges import HttpExchange, WebsocketExchange
from reload_middleware._pipeline import AppVersion
from reload_middleware._types import Message


class _Client:
    """The server side of one connection: what the app receives, and what it sent."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.body_awaited = anyio.Event()
        self.body_arrives = anyio.Event()

    async def receive(self) -> Message:
        self.body_awaited.set()
        await self.body_arrives.wait()
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: Message) -> None:
        self.sent.append(message)


def version() -> AppVersion:
    return AppVersion(2, app=None, header=(b"x-reload-version", b"2"))


def test_a_request_computes_until_its_response_starts_but_not_while_its_body_is_awaited() -> None:
    serving, client = version(), _Client()
    seen: dict[str, int] = {}

    async def main() -> None:
        exchange = HttpExchange(serving, client.receive, client.send)
        seen["started"] = serving.computing
        async with anyio.create_task_group() as group:
            group.start_soon(exchange.receive)
            await client.body_awaited.wait()
            seen["awaiting body"] = serving.computing
            client.body_arrives.set()
        seen["body received"] = serving.computing
        await exchange.send({"type": "http.response.start", "status": 200, "headers": []})
        seen["responding"] = serving.computing
        seen["in flight"] = serving.in_flight
        exchange.end()
        seen["ended"] = serving.in_flight

    anyio.run(main)
    assert seen == {
        "started": 1,
        "awaiting body": 0,
        "body received": 1,
        "responding": 0,
        "in flight": 1,
        "ended": 0,
    }
    assert client.sent[0]["headers"] == [(b"x-reload-version", b"2")]


def test_a_streamed_response_is_long_lived_and_cannot_send_once_closed() -> None:
    serving, client = version(), _Client()

    async def main() -> None:
        exchange = HttpExchange(serving, client.receive, client.send)
        await exchange.send({"type": "http.response.start", "status": 200, "headers": []})
        await exchange.send({"type": "http.response.body", "body": b"1", "more_body": True})
        assert serving.long_lived == 1
        assert serving.close_connections() == 1
        with pytest.raises(OSError, match="version 2 of the app was retired"):
            await exchange.send({"type": "http.response.body", "body": b"2", "more_body": True})
        exchange.end()

    anyio.run(main)
    assert serving.in_flight == 0


def test_a_websocket_is_long_lived_from_the_start_and_never_computing() -> None:
    serving, client = version(), _Client()

    async def main() -> None:
        websocket = WebsocketExchange(serving, client.send)
        assert (serving.in_flight, serving.computing, serving.long_lived) == (1, 0, 1)
        await websocket.send({"type": "websocket.accept"})
        websocket.end()

    anyio.run(main)
    assert client.sent == [{"type": "websocket.accept", "headers": [(b"x-reload-version", b"2")]}]


def test_a_websocket_is_closed_with_1012_from_another_thread() -> None:
    serving, client = version(), _Client()

    async def main() -> None:
        websocket = WebsocketExchange(serving, client.send)
        # The pipeline's thread closes it; the close message is sent on this event loop.
        await anyio.to_thread.run_sync(serving.close_connections)
        websocket.end()

    anyio.run(main)
    assert client.sent == [{"type": "websocket.close", "code": 1012, "reason": "new version"}]

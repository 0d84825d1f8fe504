"""ASGI requests counted on their version, in-process: computing until the response starts (but
not while the body is awaited), long-lived once it streams, closed when its version must go."""

from __future__ import annotations

import threading

import anyio
import anyio.from_thread
import anyio.lowlevel
import pytest

from reload_middleware._middleware.exchanges import HttpExchange, WebsocketExchange
from reload_middleware._pipeline import AppVersion
from reload_middleware._types import Message

HEADER = (b"x-reload-version", b"2")


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


def version(header: tuple[bytes, bytes] | None = HEADER) -> AppVersion:
    return AppVersion(2, app=None, header=header)


def test_a_request_computes_until_its_response_starts_but_not_while_its_body_is_awaited() -> None:
    serving = version()
    seen: dict[str, int] = {}

    async def main() -> None:
        client = _Client()
        exchange = HttpExchange(serving, client.receive, client.send)
        seen["started"] = serving.computing
        with anyio.fail_after(5):
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


def test_the_version_header_is_appended_to_the_response_headers() -> None:
    serving = version()
    sent: list[Message] = []

    async def main() -> None:
        client = _Client()
        exchange = HttpExchange(serving, client.receive, client.send)
        await exchange.send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await exchange.send({"type": "http.response.body", "body": b"ok"})
        exchange.end()
        sent.extend(client.sent)

    anyio.run(main)
    assert sent[0]["headers"] == [(b"content-type", b"text/plain"), HEADER]
    assert sent[1] == {"type": "http.response.body", "body": b"ok"}
    assert serving.long_lived == 0  # answered in one piece


def test_a_version_without_a_header_leaves_the_response_headers_alone() -> None:
    serving = version(header=None)
    sent: list[Message] = []

    async def main() -> None:
        client = _Client()
        exchange = HttpExchange(serving, client.receive, client.send)
        await exchange.send({"type": "http.response.start", "status": 204, "headers": [(b"x-app", b"1")]})
        exchange.end()
        sent.extend(client.sent)

    anyio.run(main)
    assert sent[0]["headers"] == [(b"x-app", b"1")]


def test_a_streamed_response_is_long_lived_and_cannot_send_once_closed() -> None:
    serving = version()
    long_lived: list[int] = []

    async def main() -> None:
        client = _Client()
        exchange = HttpExchange(serving, client.receive, client.send)
        await exchange.send({"type": "http.response.start", "status": 200, "headers": []})
        long_lived.append(serving.long_lived)
        await exchange.send({"type": "http.response.body", "body": b"1", "more_body": True})
        long_lived.append(serving.long_lived)
        assert serving.close_connections() == 1
        with pytest.raises(OSError, match="version 2 of the app was retired"):
            await exchange.send({"type": "http.response.body", "body": b"2", "more_body": True})
        assert [message.get("body") for message in client.sent] == [None, b"1"]  # nothing after the close
        exchange.end()

    anyio.run(main)
    assert long_lived == [0, 1]
    assert serving.in_flight == 0


def test_a_streaming_request_reading_more_of_its_body_is_not_counted_as_paced() -> None:
    serving = version()
    paced: list[bool] = []

    async def main() -> None:
        client = _Client()
        client.body_arrives.set()
        exchange = HttpExchange(serving, client.receive, client.send)
        await exchange.send({"type": "http.response.start", "status": 200, "headers": []})
        await exchange.receive()
        paced.append(exchange.paced)
        exchange.end()

    anyio.run(main)
    assert paced == [False]
    assert serving.computing == 0


def test_a_websocket_is_long_lived_from_the_start_and_never_computing() -> None:
    serving = version()
    counts: list[tuple[int, int, int]] = []
    sent: list[Message] = []

    async def main() -> None:
        client = _Client()
        websocket = WebsocketExchange(serving, client.send)
        counts.append((serving.in_flight, serving.computing, serving.long_lived))
        await websocket.send({"type": "websocket.accept", "headers": [(b"x-app", b"1")]})
        await websocket.send({"type": "websocket.send", "text": "hello"})
        websocket.end()
        sent.extend(client.sent)

    anyio.run(main)
    assert counts == [(1, 0, 1)]
    assert sent == [
        {"type": "websocket.accept", "headers": [(b"x-app", b"1"), HEADER]},
        {"type": "websocket.send", "text": "hello"},
    ]
    assert serving.in_flight == 0


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_websocket_is_closed_with_1012_through_its_event_loop_from_another_thread(backend: str) -> None:
    serving = version()
    sent: list[Message] = []
    closed: list[int] = []

    async def main() -> None:
        client = _Client()
        websocket = WebsocketExchange(serving, client.send)
        done, token = anyio.Event(), anyio.lowlevel.current_token()

        def pipeline_thread() -> None:  # close_connections returns once the loop has sent the close
            try:
                closed.append(serving.close_connections())
            finally:
                anyio.from_thread.run_sync(done.set, token=token)

        thread = threading.Thread(target=pipeline_thread)
        thread.start()
        try:
            with anyio.fail_after(5):
                await done.wait()  # the loop keeps running meanwhile: the close is sent on it
        finally:
            thread.join(5)
        sent.extend(client.sent)
        websocket.end()

    anyio.run(main, backend=backend)
    assert closed == [1]
    assert sent == [{"type": "websocket.close", "code": 1012, "reason": "new version"}]
    assert serving.in_flight == 0


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_closing_a_websocket_whose_event_loop_has_ended_does_nothing(backend: str) -> None:
    serving = version()
    opened: list[tuple[_Client, WebsocketExchange]] = []

    async def main() -> None:
        client = _Client()
        opened.append((client, WebsocketExchange(serving, client.send)))

    anyio.run(main, backend=backend)
    [(client, websocket)] = opened
    assert serving.close_connections() == 1  # the server is gone: nothing to send, nothing raised
    assert client.sent == []
    websocket.end()
    assert serving.in_flight == 0

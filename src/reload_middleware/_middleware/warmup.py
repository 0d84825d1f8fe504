"""The warm-up request: one request a new version answers before it serves anyone.

Frameworks that set routes up lazily (FastAPI compiles each route on its first match: 58 ms for
64 routers, measured) then do it here rather than on a user's first request. The path matches no
route, so no endpoint runs; the answer (a 404) is thrown away, and so is any error: a warm-up is a
favour, never a reason to fail a reload.

It can neither spin nor hang: ``receive()`` answers the (empty) body once and ``http.disconnect``
after that, as a server does for a client that left (Quart and Starlette's streaming responses
call ``receive()`` until they see it); and it runs on an event loop of its own in a bounded thread,
so that even an app that never yields is stopped after the time limit.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import anyio

from .._errors import BuildTimeout
from .._pipeline import run_bounded

logger = logging.getLogger(__name__)

WARMUP_PATH = "/__reload_middleware_warmup__"
Message = MutableMapping[str, Any]


def warm_up(app: Any, state: dict[str, Any] | None, timeout: float, backend: str = "asyncio") -> None:
    """Send ``app`` the warm-up request in a thread with its own event loop, for at most ``timeout`` s."""
    try:
        run_bounded(lambda: anyio.run(_request, app, state, backend=backend), timeout, "warm-up request")
    except BuildTimeout as exc:
        logger.warning("%s; the new version is swapped in all the same", exc)
    except BaseException as exc:  # SystemExit from the app too: a favour never fails a reload
        logger.debug("the warm-up request failed: %r", exc)


async def _request(app: Any, state: dict[str, Any] | None) -> None:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
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
    if state is not None:
        scope["state"] = dict(state)
    body_sent = False

    async def receive() -> Message:
        nonlocal body_sent
        if body_sent:
            return {"type": "http.disconnect"}
        body_sent = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    await app(scope, receive, send)

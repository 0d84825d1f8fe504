"""The per-request path must not grow with the number of tracked modules.

Counted, not timed: the file-system calls and the calls into this package's own functions that
200 requests make, for an app of 10 modules and one of 300, with the file watcher running.
"""

from __future__ import annotations

import gc
import os
import socket
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import pytest
import uvicorn
from harness import AppTree, wait_until

import reload_middleware
from reload_middleware import ReloadMiddleware

PACKAGE_DIR = str(Path(reload_middleware.__file__).parent)
REQUESTS = 200


def _write_app(tree: AppTree, modules: int) -> None:
    tree.write("__init__.py", "")
    for index in range(modules):
        tree.write(f"m{index}.py", f"VALUE = {index}\n")
    names = ", ".join(f"m{index}" for index in range(modules))
    tree.write(
        "main.py",
        f"""
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route

        from PKG import {names}


        async def home(request):
            return PlainTextResponse("ok")


        app = Starlette(routes=[Route("/", home)])
        """,
    )


@contextmanager
def _counting() -> Iterator[Counter[str]]:
    """Count file-system calls, and calls into this package, in every thread started inside."""
    counts: Counter[str] = Counter()
    originals = {name: getattr(os, name) for name in ("stat", "lstat", "scandir", "listdir")}

    def counted(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            counts[f"os.{name}"] += 1
            return originals[name](*args, **kwargs)

        return call

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(PACKAGE_DIR):
            counts[f"{os.path.relpath(frame.f_code.co_filename, PACKAGE_DIR)}:{frame.f_code.co_name}"] += 1

    for name in originals:
        setattr(os, name, counted(name))
    threading.setprofile(profile)
    try:
        yield counts
    finally:
        threading.setprofile(None)
        for name, original in originals.items():
            setattr(os, name, original)


@contextmanager
def _server_thread(app: Any) -> Iterator[httpx.Client]:
    """uvicorn in a thread of this process, on a pre-bound ephemeral loopback port."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every response waits out a 40 ms delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive())
        assert server.started
        with httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}") as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    assert not thread.is_alive()


def _per_request_counts(tree: AppTree, modules: int) -> tuple[int, Counter[str]]:
    _write_app(tree, modules)
    middleware = ReloadMiddleware(f"{tree.name}.main:app", enabled=True, environ={})
    with _counting() as counts, _server_thread(middleware) as client:
        wait_until(lambda: middleware.status()["watching"])
        assert client.get("/").text == "ok"
        # A request leaves its version after the client has its answer: wait for that, then count.
        idle = lambda: middleware.status()["versions"][0]["in_flight"] == 0  # noqa: E731
        wait_until(idle)
        # Middlewares of earlier tests stop their threads when collected, calling into this
        # package: that is not per-request cost either, so it happens before, not during.
        gc.collect()
        gc.disable()
        try:
            counts.clear()  # start-up work (the first sweep among it) is not per-request cost
            for _ in range(REQUESTS):
                assert client.get("/").text == "ok"
            wait_until(idle)
            measured = counts.copy()
        finally:
            gc.enable()
    return middleware.status()["tracked_modules"], measured


@pytest.fixture
def second_tree(tmp_path: Path) -> Iterator[AppTree]:
    tree = AppTree(tmp_path / "second")
    sys.path.insert(0, str(tree.root))
    yield tree
    sys.path.remove(str(tree.root))
    for name in [name for name in sys.modules if name.startswith(tree.name)]:
        del sys.modules[name]


def test_request_path_cost_does_not_grow_with_tracked_modules(imported_tree: AppTree, second_tree: AppTree) -> None:
    small_tracked, small = _per_request_counts(imported_tree, 10)
    large_tracked, large = _per_request_counts(second_tree, 300)
    assert (small_tracked, large_tracked) == (12, 302)
    assert not any(key.startswith("os.") for key in small | large), (small, large)
    assert small == large
    # Each request runs a fixed, small number of this package's functions (live refresh, on in
    # watch mode, looks at its Accept header: one of them).
    assert small["_middleware/asgi.py:__call__"] == REQUESTS
    assert sum(small.values()) <= 7 * REQUESTS

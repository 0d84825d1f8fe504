"""Any ASGI server and event loop: hypercorn (asyncio and trio workers), granian, and Starlette's
TestClient with and without a ``with`` block on both anyio backends; an edit is served on each."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import anyio
import httpx
import pytest
from apps import STARLETTE_APP, write_app
from harness import AppTree, ServerFactory, wait_until
from starlette.testclient import TestClient

from reload_middleware import ReloadMiddleware

BIN = Path(sys.executable).parent
SERVERS = {
    "hypercorn-asyncio": [str(BIN / "hypercorn"), "--bind", "fd://{fd}", "--worker-class", "asyncio"],
    "hypercorn-trio": [str(BIN / "hypercorn"), "--bind", "fd://{fd}", "--worker-class", "trio"],
    "granian": [str(BIN / "granian"), "--interface", "asgi", "--host", "127.0.0.1", "--port", "{port}"],
}


@pytest.mark.parametrize("server_name", list(SERVERS))
def test_an_edit_is_served_under_another_server(tree: AppTree, serve: ServerFactory, server_name: str) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(command=SERVERS[server_name])
    wait_until(lambda: server.status()["watching"])
    assert server.client.get("/").text == "one"
    assert server.client.get("/state").json() == {"built_by": "one"}  # its lifespan ran
    tree.write("leaf.py", 'VALUE = "two"\n')
    wait_until(lambda: server.client.get("/").text == "two")
    response = server.client.get("/state")
    assert (response.json(), response.headers["x-reload-version"]) == ({"built_by": "two"}, "2")
    assert server.status()["failures"] == 0


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("entered", [True, False], ids=["with", "without-with"])
def test_an_edit_is_served_through_the_testclient(
    imported_tree: AppTree, backend: Literal["asyncio", "trio"], entered: bool
) -> None:
    tree = imported_tree
    write_app(tree, {name: source for name, source in STARLETTE_APP.items() if name != "asgi.py"})
    middleware = ReloadMiddleware(f"{tree.name}.main:app", enabled=True, environ={})
    client = TestClient(middleware, backend=backend)
    if entered:
        client.__enter__()  # lifespan runs; every request then shares one event loop
    try:
        assert client.get("/").text == "one"
        wait_until(lambda: middleware.status()["watching"])
        tree.write("leaf.py", 'VALUE = "two"\n')
        # Without `with`, every request runs on a new event loop: the watcher's news reaches it.
        wait_until(lambda: client.get("/").text == "two", explain=middleware.status)
        assert client.get("/").headers["x-reload-version"] == "2"
        if entered:
            assert client.get("/state").json() == {"built_by": "two"}
    finally:
        if entered:
            client.__exit__(None, None, None)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_an_edit_is_served_through_httpx_asgi_transport(imported_tree: AppTree, backend: str) -> None:
    tree = imported_tree
    write_app(tree, {name: source for name, source in STARLETTE_APP.items() if name != "asgi.py"})
    middleware = ReloadMiddleware(f"{tree.name}.main:app", enabled=True, environ={})

    async def get() -> str:
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return (await client.get("/")).text

    assert anyio.run(get, backend=backend) == "one"
    wait_until(lambda: middleware.status()["watching"])
    tree.write("leaf.py", 'VALUE = "two"\n')
    wait_until(lambda: anyio.run(get, backend=backend) == "two")


def test_edits_are_served_where_files_are_polled(tree: AppTree, serve: ServerFactory) -> None:
    """Docker Desktop and WSL bind mounts give no inotify event: watchfiles' variable makes it poll."""
    write_app(tree, STARLETTE_APP)
    server = serve(env={"WATCHFILES_FORCE_POLLING": "1"})
    wait_until(lambda: server.status()["watching"])
    assert server.status()["watcher"]["backend"] == "polling"
    while time.time() % 1 > 0.1:  # at the start of a second
        time.sleep(0.01)
    tree.write("leaf.py", 'VALUE = "two"\n')
    time.sleep(0.5)  # watchfiles' poller (every 300 ms) has seen this save by now
    tree.write("leaf.py", 'VALUE = "six"\n')  # the same size, within the same second
    wait_until(lambda: server.client.get("/").text == "six")
    assert server.status()["failures"] == 0


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
def test_a_bad_environment_value_stops_the_start_with_one_line(tree: AppTree, server: str) -> None:
    write_app(tree, STARLETTE_APP)
    tree.write("wrapped.py", "from reload_middleware import reloadable\n\napp = reloadable('PKG.main:app')\n")
    command = [str(BIN / server), f"{tree.name}.wrapped:app", "--bind" if server == "gunicorn" else "--port", "0"]
    if server == "gunicorn":
        command[-1] = "127.0.0.1:0"
    environment = {**os.environ, "PYTHONPATH": str(tree.root), "RELOAD_MIDDLEWARE": "2"}
    ended = subprocess.run(command, cwd=tree.root, env=environment, capture_output=True, text=True, timeout=60)
    said = "reload-middleware: RELOAD_MIDDLEWARE='2' is not a boolean: use one of 1/true/yes/on or 0/false/no/off"
    assert said in ended.stderr.splitlines()
    assert "Traceback" not in ended.stderr
    assert ended.returncode == 3  # uvicorn: a server that cannot start; gunicorn: a worker failed to boot

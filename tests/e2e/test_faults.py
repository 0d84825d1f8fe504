"""Faults a real day of development produces, against real uvicorn and gunicorn servers: no edit,
import or client may crash, stall or fool the reload pipeline."""

from __future__ import annotations

import os
import socket
import textwrap
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from apps import FLASK_APP, LIFECYCLE_APP, STARLETTE_APP, write_app
from harness import AppTree, Server, ServerFactory, wait_until
from test_wsgi import GUNICORN

# Statements that end a module's import with something other than an ``Exception``.
NOT_EXCEPTIONS = {
    "sys.exit(3)": "import sys\nsys.exit(3)\n",
    "raise SystemExit": "raise SystemExit\n",
    "raise KeyboardInterrupt": "raise KeyboardInterrupt\n",
    "raise GeneratorExit": "raise GeneratorExit\n",
    "a BaseException subclass": "class Stop(BaseException):\n    pass\n\n\nraise Stop('stop here')\n",
}


def start_uvicorn(tree: AppTree, serve: ServerFactory, **env: str) -> Server:
    write_app(tree, STARLETTE_APP)
    server = serve(env=env)
    wait_until(lambda: server.status()["process"]["listening"])
    return server


def start_gunicorn(tree: AppTree, serve: ServerFactory, **env: str) -> Server:
    write_app(tree, FLASK_APP)
    server = serve("PKG.wsgi:app", env=env, command=GUNICORN)
    wait_until(lambda: server.status()["watching"])
    return server


SERVERS: dict[str, Callable[..., Server]] = {"uvicorn": start_uvicorn, "gunicorn": start_gunicorn}


@pytest.mark.parametrize("statement", list(NOT_EXCEPTIONS))
@pytest.mark.parametrize("kind", list(SERVERS))
def test_a_module_that_exits_at_import_is_a_failed_reload_and_the_server_lives_on(
    tree: AppTree, serve: ServerFactory, kind: str, statement: str
) -> None:
    server = SERVERS[kind](tree, serve)
    pid = server.client.get("/process").json()["pid"]
    tree.write("leaf.py", NOT_EXCEPTIONS[statement])
    wait_until(lambda: server.status()["failures"] == 1)
    status = server.status()
    assert status["last_error"]["line"] is not None
    assert status["last_error"]["resolved"] is False
    assert status["version"] == 1
    assert status["watching"]
    assert server.client.get("/").text == "one"
    tree.write("leaf.py", 'VALUE = "two"\n')
    wait_until(lambda: server.client.get("/").text == "two")
    assert server.client.get("/process").json()["pid"] == pid
    assert server.process.poll() is None
    status = server.status()
    assert status["last_error"]["resolved"] is True
    assert status["last_error"]["time"] <= status["last_reload"]["time"]


@pytest.mark.parametrize("kind", list(SERVERS))
def test_an_endless_import_is_stopped_at_build_timeout_and_requests_are_answered_meanwhile(
    tree: AppTree, serve: ServerFactory, kind: str
) -> None:
    server = SERVERS[kind](tree, serve, RELOAD_MIDDLEWARE_BUILD_TIMEOUT="1")
    tree.write("leaf.py", 'VALUE = "spin"\nwhile True:\n    pass\n')
    wait_until(lambda: server.status()["reloading"], timeout=5)
    # While the build spins, a request waits at most build_timeout, then the old version answers.
    response = server.client.get("/", timeout=5)
    assert (response.status_code, response.text) == (200, "one")
    wait_until(lambda: server.status()["failures"] == 1, timeout=10)
    error = server.status()["last_error"]
    assert error["type"] == "BuildTimeout"
    assert "1 s" in error["message"]
    assert error["file"] == str(tree.path("leaf.py"))
    tree.write("leaf.py", 'VALUE = "two"\n')
    wait_until(lambda: server.client.get("/").text == "two")


def test_a_build_stuck_in_c_is_abandoned_reported_and_the_server_recovers(tree: AppTree, serve: ServerFactory) -> None:
    server = start_uvicorn(tree, serve, RELOAD_MIDDLEWARE_BUILD_TIMEOUT="0.5")
    tree.write("leaf.py", 'import time\ntime.sleep(4)\nVALUE = "slept"\n')
    wait_until(lambda: server.status()["failures"] == 1, timeout=10)
    error = server.status()["last_error"]
    assert "cannot be interrupted" in error["message"]
    assert "time.sleep(4)" in error["message"]  # the stack it is stuck in
    assert server.client.get("/").text == "one"
    tree.write("leaf.py", 'VALUE = "two"\n')
    # Once the stuck thread has ended, its load is undone and the next check goes through.
    wait_until(lambda: server.client.post("/__reload").json()["ok"], timeout=15, interval=0.3)
    assert server.client.get("/").text == "two"


def test_in_manual_mode_no_request_waits_for_a_slow_build(tree: AppTree, serve: ServerFactory) -> None:
    server = start_uvicorn(tree, serve, RELOAD_MIDDLEWARE_WATCH="0", RELOAD_MIDDLEWARE_BUILD_TIMEOUT="20")
    tree.write("leaf.py", 'import time\ntime.sleep(2)\nVALUE = "two"\n')
    answers: list[httpx.Response] = []
    reload = threading.Thread(target=lambda: answers.append(server.client.post("/__reload", timeout=30)))
    reload.start()
    wait_until(lambda: server.status()["reloading"])
    started = time.monotonic()
    assert server.client.get("/").text == "one"
    assert time.monotonic() - started < 1.0  # answered by the old version, not held for the build
    reload.join(30)
    assert answers[0].json()["ok"]
    assert server.client.get("/").text == "two"


@pytest.mark.parametrize("trial", range(3))
def test_a_save_during_a_build_gets_a_reload_of_its_own(tree: AppTree, serve: ServerFactory, trial: int) -> None:
    server = start_uvicorn(tree, serve)
    tree.write("leaf.py", f'import time\ntime.sleep(0.3)\nVALUE = "first{trial}"\n')
    wait_until(lambda: server.status()["reloading"], timeout=5)
    tree.write("leaf.py", f'VALUE = "second{trial}"\n')  # lands while the first save imports
    wait_until(lambda: server.client.get("/").text == f"second{trial}", timeout=10)


def test_a_half_written_module_is_never_left_served(tree: AppTree, serve: ServerFactory) -> None:
    server = start_uvicorn(tree, serve)
    path = tree.path("leaf.py")
    with open(path, "w") as file:  # an editor that truncates, writes half, then the rest
        # The first half is a module of its own, 200 ms to import: the rest lands during its build.
        file.write('import time\ntime.sleep(0.2)\nVALUE = "half"\n')
        file.flush()
        wait_until(lambda: server.status()["reloading"], timeout=5, interval=0.005)
        file.write('VALUE = "complete"\n')
    wait_until(lambda: server.client.get("/").text == "complete", timeout=10)


def start_lifecycle(tree: AppTree, serve: ServerFactory, **env: str) -> Server:
    write_app(tree, LIFECYCLE_APP)
    server = serve(env={"LIFECYCLE_LOG": str(tree.root / "lifecycle.log"), **env})
    wait_until(lambda: server.status()["watching"])
    return server


def test_an_open_stream_holds_neither_the_swap_nor_new_requests(tree: AppTree, serve: ServerFactory) -> None:
    server = start_lifecycle(tree, serve)
    with server.client.stream("GET", "/stream", params={"chunks": 100, "interval": 0.1}) as response:
        lines = response.iter_lines()
        assert next(lines) == "v1:0"
        tree.write("leaf.py", 'VALUE = "v2"\n')
        started = time.monotonic()
        wait_until(lambda: server.client.get("/").text == "v2 v2", timeout=5)
        assert time.monotonic() - started < 5  # not drain_timeout (30 s)
        assert next(lines).startswith("v1:")  # the stream carries on, on its version


def test_a_stalled_upload_holds_neither_the_swap_nor_new_requests(tree: AppTree, serve: ServerFactory) -> None:
    server = start_lifecycle(tree, serve)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as upload:
        upload.sendall(b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nonly a part")
        wait_until(lambda: server.status()["versions"][0]["in_flight"] == 1)
        tree.write("leaf.py", 'VALUE = "v2"\n')
        wait_until(lambda: server.client.get("/").text == "v2 v2", timeout=5)
        upload.sendall(b"x" * (1000 - len(b"only a part")))
        answer = b""
        while not answer.endswith(b"bytes"):
            chunk = upload.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert b"x-reload-version: 1" in answer  # it finished on the version it started on
    assert answer.endswith(b"v1 received 1000 bytes")


def test_a_streamed_flask_response_holds_neither_the_swap_nor_new_requests(tree: AppTree, serve: ServerFactory) -> None:
    server = start_gunicorn(tree, serve)
    with server.client.stream("GET", "/stream", params={"chunks": 100, "interval": 0.1}) as response:
        lines = response.iter_lines()
        assert next(lines) == "one:0"
        tree.write("leaf.py", 'VALUE = "two"\n')
        started = time.monotonic()
        wait_until(lambda: server.client.get("/").text == "two", timeout=5)
        assert time.monotonic() - started < 5  # not the 10 s the stream lasts, nor drain_timeout
        assert next(lines).startswith("one:")


RAW_APP = """
import os
import textwrap

from PKG.leaf import VALUE


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if VALUE == "broken-startup":
                    raise RuntimeError("the database is down")
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": VALUE.encode()})
        return
    if VALUE == "never-yields":
        while True:  # an app that blocks its event loop on unknown paths
            pass
    # Unknown paths: read until the client is gone, as Quart and streaming responses do.
    while (await receive())["type"] != "http.disconnect":
        pass
"""


def start_raw(tree: AppTree, serve: ServerFactory, **env: str) -> Server:
    write_app(tree, {"__init__.py": "", "leaf.py": 'VALUE = "one"\n', "main.py": RAW_APP})
    tree.write("asgi.py", "from reload_middleware import ReloadMiddleware\n\napp = ReloadMiddleware('PKG.main:app')\n")
    server = serve(env=env)
    wait_until(lambda: server.status()["watching"])
    return server


def test_the_warm_up_of_an_app_that_reads_until_disconnect_ends(tree: AppTree, serve: ServerFactory) -> None:
    server = start_raw(tree, serve)
    tree.write("leaf.py", 'VALUE = "two"\n')
    wait_until(lambda: server.client.get("/").text == "two", timeout=5)
    assert "warm-up" not in server.log()


def test_the_warm_up_of_an_app_that_never_yields_is_bounded(tree: AppTree, serve: ServerFactory) -> None:
    server = start_raw(tree, serve, RELOAD_MIDDLEWARE_BUILD_TIMEOUT="1")
    tree.write("leaf.py", 'VALUE = "never-yields"\n')
    wait_until(lambda: server.client.get("/").text == "never-yields", timeout=10)
    assert "warm-up request did not finish within 1 s" in server.log()


def test_a_lifespan_startup_that_raises_after_receive_is_a_failed_reload(tree: AppTree, serve: ServerFactory) -> None:
    server = start_raw(tree, serve)
    tree.write("leaf.py", 'VALUE = "broken-startup"\n')
    wait_until(lambda: server.status()["failures"] == 1)
    error = server.status()["last_error"]
    # Not "lifespan unsupported": the app had called receive(), so its startup failed.
    assert (error["type"], error["message"], server.status()["version"]) == ("RuntimeError", "the database is down", 1)
    assert "Reload failed, the old version keeps serving: RuntimeError: the database is down" in server.log()
    assert server.client.get("/").text == "one"


def test_an_edit_that_needs_a_restart_blocks_no_other_edit(tree: AppTree, serve: ServerFactory) -> None:
    server = start_uvicorn(tree, serve)
    tree.write("asgi.py", STARLETTE_APP["asgi.py"] + "# edited: the wrapper module cannot be reloaded\n")
    wait_until(lambda: server.status()["restart_required"])
    assert f"{tree.name}.asgi" in server.status()["restart_required"][0]
    tree.write("leaf.py", 'VALUE = "two"\n')
    wait_until(lambda: server.client.get("/").text == "two")
    status = server.status()
    assert f"{tree.name}.asgi" in status["restart_required"][0]  # still pending, still said
    # Said with the reload's own line, once its checks after the swap are done (clients are served first).
    wait_until(lambda: "Restart required" in server.log())


def test_a_factory_runs_once_per_version(tree: AppTree, serve: ServerFactory) -> None:
    calls = tree.root / "factory-calls"
    write_app(tree, STARLETTE_APP)
    tree.write(
        "factory.py",
        f"""
        from PKG.main import app as built


        def create_app():
            with open({str(calls)!r}, "a") as log:
                log.write("called\\n")
            return built
        """,
    )
    tree.write(
        "asgi.py",
        STARLETTE_APP["asgi.py"]
        .replace("ReloadMiddleware", "reloadable")
        .replace('"PKG.main:app"', '"PKG.factory:create_app", factory=True'),
    )
    server = serve()
    assert calls.read_text().splitlines() == ["called"]
    tree.write("leaf.py", 'VALUE = "two"\n')
    wait_until(lambda: server.client.get("/").text == "two")
    assert calls.read_text().splitlines() == ["called", "called"]


def test_two_servers_of_one_app_from_one_place_do_not_trigger_each_other(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    first, second = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"}), serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    trigger = first.status()["process"]["shared_trigger"]
    assert trigger == second.status()["process"]["shared_trigger"]
    assert first.client.post("/__reload?force=1").json()["version"] == 2
    time.sleep(1.0)  # room for the other server to (wrongly) react
    assert second.status()["version"] == 1
    first.stop()
    second.stop()
    assert not os.path.exists(trigger)


@pytest.mark.parametrize(("kind", "prefix"), [("uvicorn", "INFO:     "), ("gunicorn", "[INFO] ")])
def test_reloads_are_logged_like_the_servers_own_lines(
    tree: AppTree, serve: ServerFactory, kind: str, prefix: str
) -> None:
    server = SERVERS[kind](tree, serve)
    tree.write("leaf.py", 'VALUE = "two"\n')
    wait_until(lambda: server.client.get("/").text == "two")
    wait_until(lambda: "Reloaded " in server.log())
    line = next(line for line in server.log().splitlines() if "Reloaded " in line)
    assert prefix in line
    assert f"{tree.name}.leaf" in line
    assert "changes detected" not in server.log()


def write_release(tree: AppTree, release: str, value: str) -> None:
    """A whole copy of the app under releases/<release>/, as a deploy tool lays it out."""
    for relative, source in {**STARLETTE_APP, "leaf.py": f'VALUE = "{value}"\n'}.items():
        path = tree.root / "releases" / release / tree.name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).replace("PKG", tree.name))


def switch_release(tree: AppTree, release: str) -> None:
    """Point `current` at a release atomically (a new link renamed over the old one)."""
    temporary = tree.root / "current.new"
    temporary.symlink_to(tree.root / "releases" / release)
    os.replace(temporary, tree.root / "current")


def test_a_release_symlink_switch_is_picked_up_by_post_and_its_edits_are_watched(
    tree: AppTree, serve: ServerFactory
) -> None:
    write_release(tree, "v1", "one")
    switch_release(tree, "v1")
    server = serve(env={"PYTHONPATH": str(tree.root / "current")})
    wait_until(lambda: server.status()["watching"])
    assert server.client.get("/").text == "one"

    write_release(tree, "v2", "two")
    switch_release(tree, "v2")
    answer = server.client.post("/__reload").json()
    assert (answer["ok"], answer["version"], answer["restart_required"]) == (True, 2, [])
    assert answer["reloaded"]  # the modules whose content differs, and their importers
    assert server.client.get("/").text == "two"

    # Later edits land in the new release's files, and are seen there.
    wait_until(lambda: server.status()["watching"])
    new_leaf = tree.root / "releases" / "v2" / tree.name / "leaf.py"
    temporary = new_leaf.with_name(".leaf.py.saving")
    temporary.write_text('VALUE = "three"\n')
    os.replace(temporary, new_leaf)
    wait_until(lambda: server.client.get("/").text == "three")

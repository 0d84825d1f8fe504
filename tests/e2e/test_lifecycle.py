"""Version lifecycle against a real uvicorn server: lifespan per version, drain, streams, websockets."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from apps import LIFECYCLE_APP, write_app
from harness import AppTree, Server, ServerFactory, SlowRequest, wait_until
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


@pytest.fixture
def events(tree: AppTree) -> Path:
    return tree.root / "lifecycle.log"


def start(tree: AppTree, serve: ServerFactory, events: Path, **env: str) -> Server:
    write_app(tree, LIFECYCLE_APP)
    server = serve(env={"LIFECYCLE_LOG": str(events), **env})
    wait_until(lambda: server.status()["watching"])
    return server


def edit(tree: AppTree, value: str) -> None:
    tree.write("leaf.py", f'VALUE = "{value}"\n')


def lines(events: Path) -> list[str]:
    return events.read_text().splitlines() if events.exists() else []


def test_each_version_starts_before_serving_and_stops_once_after_its_last_request(
    tree: AppTree, serve: ServerFactory, events: Path
) -> None:
    server = start(tree, serve, events)
    assert server.client.get("/").text == "v1 v1"
    edit(tree, "v2")
    wait_until(lambda: server.client.get("/").text == "v2 v2")
    wait_until(lambda: lines(events) == ["start v1", "start v2", "stop v1"])
    # Its lifespan stopped first, then it leaves the live versions.
    wait_until(lambda: [v["number"] for v in server.status()["versions"]] == [2])

    edit(tree, "v3")
    wait_until(lambda: server.client.get("/").text == "v3 v3")
    server.stop()
    assert lines(events) == ["start v1", "start v2", "stop v1", "start v3", "stop v2", "stop v3"]


def test_failed_lifespan_startup_fails_the_reload_and_the_old_version_serves_on(
    tree: AppTree, serve: ServerFactory, events: Path
) -> None:
    server = start(tree, serve, events)
    edit(tree, "fail-startup")
    wait_until(lambda: server.status()["last_error"] is not None)
    error = server.status()["last_error"]
    assert error["type"] == "RuntimeError"  # the app's own exception, as for an error at import
    assert "startup refused for fail-startup" in error["message"]
    assert "Reload failed, the old version keeps serving: RuntimeError: startup refused" in server.log()
    assert server.client.get("/").text == "v1 v1"
    assert server.status()["version"] == 1

    edit(tree, "v2")
    wait_until(lambda: server.client.get("/").text == "v2 v2")
    assert server.status()["version"] == 2
    server.stop()
    assert lines(events) == ["start v1", "start v2", "stop v1", "stop v2"]


def test_failed_startup_of_the_first_version_reaches_the_server(
    tree: AppTree, serve: ServerFactory, events: Path
) -> None:
    write_app(tree, LIFECYCLE_APP)
    edit(tree, "fail-startup-first")
    with pytest.raises(AssertionError, match="server exited") as info:
        serve(env={"LIFECYCLE_LOG": str(events)})
    assert "Application startup failed" in str(info.value)
    assert "startup refused for fail-startup-first" in str(info.value)


def test_an_app_without_lifespan_support_reloads_too(tree: AppTree, serve: ServerFactory) -> None:
    tree.write("__init__.py", "")
    tree.write("leaf.py", 'VALUE = b"one"\n')
    tree.write(
        "main.py",
        """
        from PKG.leaf import VALUE


        async def app(scope, receive, send):
            assert scope["type"] == "http"  # no lifespan: raising here is how an app says so
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": VALUE})
        """,
    )
    tree.write("asgi.py", "from reload_middleware import ReloadMiddleware\n\napp = ReloadMiddleware('PKG.main:app')\n")
    server = serve()
    assert server.client.get("/").text == "one"
    tree.write("leaf.py", 'VALUE = b"two"\n')
    wait_until(lambda: server.client.get("/").text == "two")
    assert "ASGI 'lifespan' protocol appears unsupported." in server.log()


def test_drain_first_finishes_old_requests_before_new_ones_start(
    tree: AppTree, serve: ServerFactory, events: Path
) -> None:
    server = start(tree, serve, events)
    slow = SlowRequest(server, 1.0)
    edit(tree, "v2")
    wait_until(lambda: server.status()["reloading"])
    # This request arrives while v1 still runs /slow: it waits at the gate, then v2 serves it.
    fresh = server.client.get("/")
    old = slow.answer(10)
    assert old.text == "v1"
    assert old.headers["x-reload-version"] == "1"
    assert fresh.text == "v2 v2"
    assert float(fresh.elapsed.total_seconds()) > 0.2


def test_a_long_poll_on_the_old_version_holds_no_new_request_past_the_build(
    tree: AppTree, serve: ServerFactory, events: Path
) -> None:
    # Guarantee 1 with a request the server paces (a long-poll): those that arrive after the edit
    # get the new version once it has built, not the old one after waiting build_timeout.
    server = start(tree, serve, events)
    slow = SlowRequest(server, 8.0)
    edit(tree, "v2")
    wait_until(lambda: server.status()["reloading"] or server.status()["version"] == 2)
    fresh = server.client.get("/")
    assert (fresh.text, fresh.headers["x-reload-version"]) == ("v2 v2", "2")
    assert fresh.elapsed.total_seconds() < 5  # build_timeout: it did not wait for the gate to give up
    assert slow.running  # the long-poll still runs, on version 1
    old = slow.answer(15)
    assert (old.text, old.headers["x-reload-version"]) == ("v1", "1")


def test_a_hung_startup_fails_the_reload_within_build_timeout_and_the_fix_goes_live_at_once(
    tree: AppTree, serve: ServerFactory, events: Path
) -> None:
    server = start(tree, serve, events, RELOAD_MIDDLEWARE_BUILD_TIMEOUT="1.5")
    edit(tree, "hang-startup")
    error = wait_until(lambda: server.status()["last_error"], timeout=15)
    assert "lifespan startup did not finish within 1.5 s" in error["message"]
    assert server.client.get("/").text == "v1 v1"
    edited = time.monotonic()
    edit(tree, "v3")
    wait_until(lambda: server.client.get("/").text == "v3 v3")
    assert time.monotonic() - edited < 5  # not startup_timeout (30 s)


def test_a_hung_shutdown_of_the_retiring_version_holds_no_reload_back_and_is_reported(
    tree: AppTree, serve: ServerFactory, events: Path
) -> None:
    write_app(tree, LIFECYCLE_APP)
    edit(tree, "hang-shutdown")  # version 1 hangs when it is asked to stop
    server = serve(env={"LIFECYCLE_LOG": str(events), "RELOAD_MIDDLEWARE_STARTUP_TIMEOUT": "4"})
    wait_until(lambda: server.status()["watching"])
    edit(tree, "v2")
    wait_until(lambda: server.client.get("/").text == "v2 v2")
    edited = time.monotonic()
    edit(tree, "v3")
    wait_until(lambda: server.client.get("/").text == "v3 v3")
    assert time.monotonic() - edited < 3  # version 1's shutdown still runs, and holds nothing back
    failures = wait_until(lambda: server.status()["shutdown_failures"], timeout=15)
    assert [(failure["version"], failure["message"]) for failure in failures] == [
        (1, "lifespan shutdown did not finish within 4 s")
    ]
    assert "lifespan shutdown of retired version 1 failed" in server.log()
    wait_until(lambda: [version["number"] for version in server.status()["versions"]] == [3])


def test_overlap_mode_serves_new_requests_while_old_ones_run(tree: AppTree, serve: ServerFactory, events: Path) -> None:
    server = start(tree, serve, events, RELOAD_MIDDLEWARE_OVERLAP="1")
    slow = SlowRequest(server, 2.0)
    edit(tree, "v2")
    wait_until(lambda: server.client.get("/").text == "v2 v2")
    assert [v["state"] for v in server.status()["versions"]] == ["draining", "serving"]
    assert slow.running
    assert slow.answer(10).text == "v1"
    wait_until(lambda: lines(events) == ["start v1", "start v2", "stop v1"])


def test_a_stream_keeps_flowing_on_its_version_while_a_slow_build_runs(
    tree: AppTree, serve: ServerFactory, events: Path
) -> None:
    server = start(tree, serve, events, RELOAD_MIDDLEWARE_DRAIN_TIMEOUT="0.5")
    arrivals: list[tuple[float, str]] = []
    with server.client.stream("GET", "/stream", params={"chunks": 30, "interval": 0.05}) as response:
        for line in response.iter_lines():
            arrivals.append((time.monotonic(), line))
            if len(arrivals) == 3:
                # A build that takes 0.8 s: the stream must not stop for that long.
                tree.write("leaf.py", 'import time\ntime.sleep(0.8)\nVALUE = "v2"\n')
    assert [line for _, line in arrivals] == [f"v1:{index}" for index in range(30)]
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(arrivals)]
    assert max(gaps) < 0.6, gaps
    wait_until(lambda: server.client.get("/").text == "v2 v2")


def test_a_websocket_stays_on_its_version_then_is_closed_with_1012(
    tree: AppTree, serve: ServerFactory, events: Path
) -> None:
    server = start(tree, serve, events, RELOAD_MIDDLEWARE_RETIRE_TIMEOUT="1.5")
    with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=5) as websocket:
        websocket.send("a")
        assert websocket.recv(timeout=5) == "v1:a"
        edit(tree, "v2")
        wait_until(lambda: server.client.get("/").text == "v2 v2")
        websocket.send("b")
        assert websocket.recv(timeout=5) == "v1:b"  # still on the version it started on
        assert lines(events) == ["start v1", "start v2"]
        # ... and says so: the status lists it on version 1, the log said so at the swap.
        old = server.status()["versions"][0]
        assert (old["number"], [c["kind"] for c in old["connections"]], old["connections"][0]["path"]) == (
            1,
            ["websocket"],
            "/ws",
        )
        assert "1 long-lived connection(s) (websockets, streams) stay on version 1" in server.log()
        with pytest.raises(ConnectionClosed) as closed:
            websocket.recv(timeout=10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1012
    wait_until(lambda: lines(events) == ["start v1", "start v2", "stop v1"])


def test_at_max_versions_the_oldest_versions_websocket_is_closed_and_the_reload_goes_on(
    tree: AppTree, serve: ServerFactory, events: Path
) -> None:
    server = start(
        tree,
        serve,
        events,
        RELOAD_MIDDLEWARE_MAX_VERSIONS="2",
        RELOAD_MIDDLEWARE_RETIRE_TIMEOUT="60",
    )
    with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=5) as websocket:
        websocket.send("a")
        assert websocket.recv(timeout=5) == "v1:a"
        edit(tree, "v2")
        wait_until(lambda: server.client.get("/").text == "v2 v2")
        assert [v["number"] for v in server.status()["versions"]] == [1, 2]
        edit(tree, "v3")
        # No request waits for the websocket: version 1 is made to go, and v3 serves.
        wait_until(lambda: server.client.get("/").text == "v3 v3", timeout=5)
        with pytest.raises(ConnectionClosed) as closed:
            websocket.recv(timeout=10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1012
    assert server.status()["last_error"] is None
    wait_until(lambda: [v["number"] for v in server.status()["versions"]] == [3])
    assert "max_versions=2" in server.log()


def test_server_shutdown_stops_every_version_once(tree: AppTree, serve: ServerFactory, events: Path) -> None:
    server = start(tree, serve, events, RELOAD_MIDDLEWARE_RETIRE_TIMEOUT="30")
    with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=5) as websocket:
        websocket.send("a")
        assert websocket.recv(timeout=5) == "v1:a"  # holds version 1 alive past the swap
        edit(tree, "v2")
        wait_until(lambda: server.client.get("/").text == "v2 v2")
        assert [v["number"] for v in server.status()["versions"]] == [1, 2]
        assert lines(events) == ["start v1", "start v2"]
        server.stop()
    # uvicorn closes the connections before the lifespan shutdown: version 1 retires as its
    # websocket ends, then the shutdown stops version 2. Each exactly once.
    assert lines(events) == ["start v1", "start v2", "stop v1", "stop v2"]


HELD_RETIREMENT_LEAF = """
import os
import time

from reload_middleware import on_retire

VALUE = {value!r}
time.sleep({import_seconds})  # a build that takes a while: requests arrive meanwhile, and wait


def _retire_once_the_test_says_so():
    marker = os.environ["RETIRE_MARKER"]
    deadline = time.monotonic() + 3
    while not os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    with open(os.environ["RETIRE_LOG"], "a") as log:
        log.write(f"{{VALUE}} retired {{'on the marker' if os.path.exists(marker) else 'on the time limit'}}\\n")


on_retire(_retire_once_the_test_says_so)
"""


def test_requests_held_back_by_a_reload_go_at_the_swap_not_after_the_old_versions_retirement(
    tree: AppTree, serve: ServerFactory
) -> None:
    # The old version retires (and the stale check runs) after the swap: a request that waited
    # for the new version must not wait for those too. Here the old version's retirement hook
    # waits (3 s at most) until the test has been answered by the new version, and the requests
    # that wait for the build may wait longer than that (build_timeout).
    marker, log = tree.root / "answered", tree.root / "retired.log"
    tree.write("__init__.py", "")
    tree.write("leaf.py", HELD_RETIREMENT_LEAF.format(value="v1", import_seconds=0))
    tree.write(
        "main.py",
        "from starlette.applications import Starlette\nfrom starlette.responses import PlainTextResponse\n"
        "from starlette.routing import Route\n\nfrom PKG import leaf\n\n\n"
        "async def home(request):\n    return PlainTextResponse(leaf.VALUE)\n\n\n"
        "app = Starlette(routes=[Route('/', home)])\n",
    )
    tree.write("asgi.py", "from reload_middleware import ReloadMiddleware\n\napp = ReloadMiddleware('PKG.main:app')\n")
    server = serve(env={"RETIRE_MARKER": str(marker), "RETIRE_LOG": str(log), "RELOAD_MIDDLEWARE_BUILD_TIMEOUT": "20"})
    wait_until(lambda: server.status()["watching"])
    assert server.client.get("/").text == "v1"

    tree.write("leaf.py", HELD_RETIREMENT_LEAF.format(value="v2", import_seconds=0.5))
    wait_until(lambda: server.client.get("/", timeout=30).text == "v2", timeout=30)
    marker.write_text("")
    wait_until(lambda: log.exists() and log.read_text())
    assert log.read_text() == "v1 retired on the marker\n"


def test_no_automatic_garbage_collection_runs_during_a_build_and_it_is_on_again_after(
    tree: AppTree, serve: ServerFactory
) -> None:
    # A full collection inside a build or warm-up (tens of ms in a big app) is kept off a
    # reload's critical path: the group imports with collection paused, which ends after the swap.
    tree.write("__init__.py", "")
    tree.write("leaf.py", "import gc\n\nAT_IMPORT = gc.isenabled()\n")
    tree.write(
        "main.py",
        "import gc\n\nfrom starlette.applications import Starlette\nfrom starlette.responses import JSONResponse\n"
        "from starlette.routing import Route\n\nfrom PKG import leaf\n\n\n"
        "async def home(request):\n    return JSONResponse([leaf.AT_IMPORT, gc.isenabled()])\n\n\n"
        "app = Starlette(routes=[Route('/', home)])\n",
    )
    tree.write("asgi.py", "from reload_middleware import ReloadMiddleware\n\napp = ReloadMiddleware('PKG.main:app')\n")
    server = serve()
    wait_until(lambda: server.status()["watching"])
    assert server.client.get("/").json() == [True, True]  # the first import is no reload
    tree.write("leaf.py", "import gc\n\nAT_IMPORT = gc.isenabled()  # edited\n")
    wait_until(lambda: server.status()["version"] == 2)
    wait_until(lambda: server.client.get("/").json() == [False, True])

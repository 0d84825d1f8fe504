"""End to end: a Starlette app under a real uvicorn server, edited while it serves."""

from __future__ import annotations

import os
import time

import pytest
from apps import STARLETTE_APP, write_app
from harness import AppTree, ServerFactory, wait_until


def serves(server: object, path: str, text: str) -> bool:
    return bool(server.client.get(path).text == text)  # type: ignore[attr-defined]


def test_edited_leaf_is_served_on_the_next_request(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve()
    first = server.client.get("/")
    assert (first.text, first.headers["x-reload-version"]) == ("one", "1")
    pid = server.client.get("/process").json()["pid"]

    tree.write("leaf.py", 'VALUE = "two"\n')
    wait_until(lambda: server.client.get("/").text == "two")

    response = server.client.get("/")
    assert response.headers["x-reload-version"] == "2"
    assert server.client.get("/process").json()["pid"] == pid
    status = server.status()
    assert status["version"] == 2
    assert status["reloads"] == 1
    assert status["last_reload"]["changed"] == [f"{tree.name}.leaf"]
    # The leaf and its importers, not the whole package: __init__ imports nothing.
    assert set(status["last_reload"]["modules"]) == {f"{tree.name}.{m}" for m in ("leaf", "mid", "routes", "main")}
    # Logged once the checks that follow the swap are done: clients are served first.
    wait_until(lambda: "Reloaded " + f"{tree.name}.leaf: 4 module(s)" in server.log())


def test_from_import_of_a_mid_level_module_sees_the_new_object(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve()
    assert server.client.get("/mid").text == "mid(one)"

    tree.write("mid.py", 'from PKG.leaf import VALUE\n\n\ndef thing() -> str:\n    return f"MID[{VALUE}]"\n')
    wait_until(lambda: server.client.get("/mid").text == "MID[one]")
    assert server.client.get("/").text == "one"


def test_lifespan_state_comes_from_the_serving_version(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve()
    assert server.client.get("/state").json() == {"built_by": "one"}

    tree.write("leaf.py", 'VALUE = "two"\n')
    wait_until(lambda: server.client.get("/").text == "two")
    assert server.client.get("/state").json() == {"built_by": "two"}


def test_syntax_error_keeps_the_old_version_until_fixed(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve()
    pid = server.client.get("/process").json()["pid"]

    broken = tree.write("leaf.py", 'VALUE = "two"\ndef broken(:\n')
    wait_until(lambda: server.status()["last_error"] is not None)
    status = server.status()
    assert status["version"] == 1
    assert status["last_error"]["type"] == "SyntaxError"
    assert status["last_error"]["file"] == str(broken)
    assert status["last_error"]["line"] == 2
    for _ in range(5):
        response = server.client.get("/")
        assert (response.status_code, response.text, response.headers["x-reload-version"]) == (200, "one", "1")
    assert "Reload failed, the old version keeps serving: SyntaxError" in server.log()

    tree.write("leaf.py", 'VALUE = "three"\n')
    wait_until(lambda: server.client.get("/").text == "three")
    assert server.client.get("/mid").text == "mid(three)"
    assert server.client.get("/process").json()["pid"] == pid
    assert server.status()["version"] == 2


def test_exception_at_import_keeps_the_old_version(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve()

    tree.write("mid.py", "from PKG.leaf import VALUE\n\nraise RuntimeError('mid is broken')\n")
    wait_until(lambda: server.status()["last_error"] is not None)
    error = server.status()["last_error"]
    assert (error["type"], error["message"], error["line"]) == ("RuntimeError", "mid is broken", 3)
    assert error["file"] == str(tree.path("mid.py"))
    assert server.client.get("/mid").text == "mid(one)"


def test_touch_without_change_reloads_nothing(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve()
    leaf = tree.path("leaf.py")
    later = time.time() + 5
    os.utime(leaf, (later, later))
    answer = server.client.post("/__reload").json()
    assert (answer["ok"], answer["reloaded"], answer["version"]) == (True, [], 1)
    assert server.status()["reloads"] == 0


def test_post_forces_a_reload_of_the_whole_app(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    tree.write("leaf.py", 'VALUE = "two"\n')
    time.sleep(0.3)  # manual mode: nothing reloads by itself
    assert server.client.get("/").text == "one"

    answer = server.client.post("/__reload").json()
    assert answer["ok"] is True
    assert answer["version"] == 2
    assert server.client.get("/").text == "two"

    forced = server.client.post("/__reload?force=1").json()
    assert forced["ok"] is True
    assert forced["version"] == 3
    assert f"{tree.name}.leaf" in forced["reloaded"]
    assert server.client.get("/").headers["x-reload-version"] == "3"


def test_disabled_is_a_pass_through(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(env={"RELOAD_MIDDLEWARE": "0"}, ready_path="/")
    response = server.client.get("/")
    assert response.text == "one"
    assert "x-reload-version" not in response.headers
    assert server.client.get("/__reload").status_code == 404
    assert "reload-middleware-watcher" not in server.client.get("/process").json()["threads"]
    tree.write("leaf.py", 'VALUE = "two"\n')
    time.sleep(0.5)
    assert server.client.get("/").text == "one"


def test_enabled_runs_one_watcher_thread_and_stops_it_cleanly(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve()
    threads = server.client.get("/process").json()["threads"]
    assert threads.count("reload-middleware-watcher") == 1
    assert server.stop() == 0
    log = server.log()
    assert "Application shutdown complete." in log
    assert "Traceback" not in log


@pytest.mark.parametrize(
    ("asgi_source", "env", "message"),
    [
        ('app = ReloadMiddleware("PKG.nowhere:app")', {}, "Could not import module 'PKG.nowhere'"),
        ('app = ReloadMiddleware("PKG.main:application")', {}, "Module 'PKG.main' has no attribute 'application'"),
        # Manual mode: in watch mode the server stays up until the module is fixed (test_recovery.py).
        (
            'app = ReloadMiddleware("PKG.broken:app")',
            {"RELOAD_MIDDLEWARE_WATCH": "0"},
            "failed inside the module: ZeroDivisionError",
        ),
        ('app = ReloadMiddleware("PKG.main:app")', {"RELOAD_MIDDLEWARE": "maybe"}, "RELOAD_MIDDLEWARE='maybe'"),
    ],
)
def test_a_wrong_start_fails_with_a_message_that_says_why(
    tree: AppTree, serve: ServerFactory, asgi_source: str, env: dict[str, str], message: str
) -> None:
    write_app(tree, STARLETTE_APP)
    tree.write("broken.py", "1 / 0\n")
    tree.write("asgi.py", "from reload_middleware import ReloadMiddleware\n" + asgi_source + "\n")
    with pytest.raises(AssertionError, match="server exited") as info:
        serve(env=env)
    assert message.replace("PKG", tree.name) in str(info.value)


def test_a_sibling_package_of_the_apps_package_is_watched_by_default(tree: AppTree, serve: ServerFactory) -> None:
    # A Django-like layout: the app's package and, beside it, a package of views it imports.
    views = f"views_{tree.name}"
    (tree.root / views).mkdir()
    (tree.root / views / "__init__.py").write_text("")
    (tree.root / views / "home.py").write_text('TEXT = "from the sibling"\n')
    write_app(tree, STARLETTE_APP)
    tree.write("leaf.py", f"from {views}.home import TEXT as VALUE\n")
    server = serve()
    assert server.client.get("/").text == "from the sibling"
    saved = tree.root / views / ".home.py.saving"
    saved.write_text('TEXT = "edited in the sibling"\n')
    os.replace(saved, tree.root / views / "home.py")
    wait_until(lambda: server.client.get("/").text == "edited in the sibling")
    assert f"{views}.home" in server.status()["last_reload"]["changed"]

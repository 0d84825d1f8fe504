"""WSGI: a Flask app under gunicorn's threaded worker (gthread), edited while it serves."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from pathlib import Path

import httpx
from apps import FLASK_APP, write_app
from harness import AppTree, Server, ServerFactory, SlowRequest, wait_until

GUNICORN = [
    str(Path(sys.executable).parent / "gunicorn"),
    "--bind",
    "fd://{fd}",
    "--worker-class",
    "gthread",
    "--threads",
    "24",
    "--workers",
    "1",
    "--graceful-timeout",
    "5",
    "--log-level",
    "info",
]


def start(tree: AppTree, serve: ServerFactory, **env: str) -> Server:
    write_app(tree, FLASK_APP)
    server = serve("PKG.wsgi:app", env=env, command=GUNICORN)
    # The first request starts the watcher in the worker process; wait until it listens.
    wait_until(lambda: server.status()["process"]["listening"])
    return server


def test_flask_edits_are_served_in_the_same_process(tree: AppTree, serve: ServerFactory) -> None:
    server = start(tree, serve)
    response = server.client.get("/")
    assert (response.text, response.headers["x-reload-version"]) == ("one", "1")
    pid = server.client.get("/process").json()["pid"]
    tree.write("leaf.py", 'VALUE = "two"\n')
    wait_until(lambda: server.client.get("/").text == "two")
    assert server.client.get("/").headers["x-reload-version"] == "2"
    assert server.client.get("/process").json()["pid"] == pid
    assert server.status()["last_reload"]["changed"] == [f"{tree.name}.leaf"]


def test_a_syntax_error_keeps_the_old_flask_version(tree: AppTree, serve: ServerFactory) -> None:
    server = start(tree, serve)
    tree.write("leaf.py", 'VALUE = "two"\nif True\n')
    wait_until(lambda: server.status()["failures"] == 1)
    error = server.status()["last_error"]
    assert (error["type"], error["line"]) == ("SyntaxError", 2)
    assert server.client.get("/").text == "one"
    tree.write("leaf.py", 'VALUE = "three"\n')
    wait_until(lambda: server.client.get("/").text == "three")


def test_a_streamed_response_finishes_on_its_own_version(tree: AppTree, serve: ServerFactory) -> None:
    server = start(tree, serve, RELOAD_MIDDLEWARE_DRAIN_TIMEOUT="10")
    lines: list[str] = []
    with server.client.stream("GET", "/stream", params={"chunks": 20, "interval": 0.05}) as response:
        assert response.headers["x-reload-version"] == "1"
        for line in response.iter_lines():
            lines.append(line)
            if len(lines) == 2:
                tree.write("leaf.py", 'VALUE = "two"\n')
    assert lines == [f"one:{index}" for index in range(20)]
    wait_until(lambda: server.client.get("/").text == "two")
    # The stream held no swap back; once it was closed, v1 retired (the pipeline's worker does it).
    wait_until(lambda: [v["number"] for v in server.status()["versions"]] == [2])


def test_a_long_poll_on_the_old_version_holds_no_new_request_past_the_build(
    tree: AppTree, serve: ServerFactory
) -> None:
    server = start(tree, serve)
    slow = SlowRequest(server, 8.0)
    tree.write("leaf.py", 'VALUE = "two"\n')
    wait_until(lambda: server.status()["reloading"] or server.status()["version"] == 2)
    fresh = server.client.get("/")
    assert (fresh.text, fresh.headers["x-reload-version"]) == ("two", "2")
    assert fresh.elapsed.total_seconds() < 5  # build_timeout
    assert slow.running
    old = slow.answer(15)
    assert (old.text, old.headers["x-reload-version"]) == ("one", "1")


def test_the_admin_endpoint_works_the_same(tree: AppTree, serve: ServerFactory) -> None:
    server = start(tree, serve, RELOAD_MIDDLEWARE_WATCH="0")
    tree.write("leaf.py", 'VALUE = "two"\n')
    answer = server.client.post("/__reload").json()
    assert (answer["ok"], answer["version"]) == (True, 2)
    assert server.anonymous.post("/__reload", headers={"x-forwarded-for": "203.0.113.9"}).status_code == 401
    assert server.client.put("/__reload").status_code == 405
    forced = server.client.post("/__reload?force=1")
    assert (forced.status_code, forced.json()["version"], forced.headers["x-reload-version"]) == (200, 3, "3")
    assert server.client.get("/").text == "two"


def test_no_request_fails_during_reloads_under_load(tree: AppTree, serve: ServerFactory) -> None:
    server = start(tree, serve)
    stop = threading.Event()
    seen: list[list[tuple[int, str]]] = [[] for _ in range(10)]
    failures: list[str] = []

    def client(index: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for _ in range(2_000):
                if stop.is_set():
                    return
                try:
                    response = http.get("/")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    failures.append(f"{response.status_code}: {response.text[:100]}")
                    continue
                seen[index].append((int(response.headers["x-reload-version"]), response.text))

    threads = [threading.Thread(target=client, args=(index,)) for index in range(10)]
    for thread in threads:
        thread.start()
    try:
        for value in range(2, 7):
            tree.write("leaf.py", f'VALUE = "v{value}"\n')
            wait_until(lambda: server.client.get("/").text == f"v{value}", timeout=30)  # noqa: B023
        tree.write("leaf.py", 'VALUE = "broken"\ndef x(:\n')
        wait_until(lambda: server.status()["failures"] == 1, timeout=30)
        tree.write("leaf.py", 'VALUE = "v7"\n')
        wait_until(lambda: server.client.get("/").text == "v7", timeout=30)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    served = [item for per_client in seen for item in per_client]
    texts_by_version = {version: {text for v, text in served if v == version} for version, _ in served}
    assert all(len(texts) == 1 for texts in texts_by_version.values()), texts_by_version
    for per_client in seen:
        versions = [version for version, _ in per_client]
        assert versions == sorted(versions)
    assert Counter(text for texts in texts_by_version.values() for text in texts)["broken"] == 0


def test_an_edited_flask_template_is_served(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, FLASK_APP)
    tree.write("templates/page.html", "<p>{{ value }} from the first template</p>\n")
    tree.write(
        "main.py",
        FLASK_APP["main.py"]
        + """

        from flask import render_template


        @app.get("/page")
        def page():
            return render_template("page.html", value=VALUE)
        """,
    )
    server = serve("PKG.wsgi:app", command=GUNICORN)
    wait_until(lambda: server.status()["process"]["listening"])
    assert server.client.get("/page").text.strip() == "<p>one from the first template</p>"
    tree.write("templates/page.html", "<p>{{ value }} from the edited template</p>\n")
    wait_until(lambda: server.client.get("/page").text.strip() == "<p>one from the edited template</p>")
    assert server.status()["last_reload"]["changed"] == [f"{tree.name}.main"]
    tree.write("templates/page.html", "<p>{{ value }} once more</p>\n")  # and again: known by now
    wait_until(lambda: server.client.get("/page").text.strip() == "<p>one once more</p>")

"""Access control of the admin endpoint through a real server: the dangerous cells of the decision
matrix (``tests/admin/test_access.py``) again, checking that a refused request never triggers a reload."""

from __future__ import annotations

from apps import STARLETTE_APP, write_app
from harness import AppTree, ServerFactory


def test_refused_requests_never_reload_through_a_real_server(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    tree.write("leaf.py", 'VALUE = "two"\n')
    anyone = server.anonymous
    hostile = [
        anyone.post("/__reload"),
        anyone.post("/__reload?force=1"),
        anyone.post("/__reload", headers={"x-forwarded-for": "203.0.113.9"}),
        anyone.post("/__reload", headers={"host": "evil.example"}),
        anyone.post("/__reload", headers={"origin": "http://evil.example"}),
        server.client.post("/__reload", headers={"origin": "http://evil.example"}),
        server.client.post("/__reload", content=b"force=1"),
        server.client.post("/__reload?force=1&now=1"),
        anyone.put("/__reload"),
        anyone.get("/__reload", headers={"x-padding": "a" * 9000}),
    ]
    assert [response.status_code for response in hostile] == [401, 401, 401, 401, 403, 403, 400, 400, 405, 431]
    assert all(response.headers["content-type"].startswith("application/json") for response in hostile)
    assert server.client.get("/").text == "one"
    assert server.status()["version"] == 1
    assert server.client.post("/__reload").json()["version"] == 2


def test_the_token_is_required_through_a_real_server(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(env={"RELOAD_MIDDLEWARE_TOKEN": "s3cret"})
    assert server.anonymous.post("/__reload").status_code == 401
    assert "last_error" in server.anonymous.get("/__reload").json()  # a loopback read, redacted
    assert server.client.post("/__reload", headers={"authorization": "Bearer nope"}).status_code == 401
    answer = server.client.post("/__reload?force=1", headers={"authorization": "Bearer s3cret"})
    assert answer.status_code == 200
    assert answer.json()["version"] == 2


def test_a_failed_reload_answers_500_with_the_error(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    tree.write("leaf.py", "VALUE = 1 / 0\n")
    answer = server.client.post("/__reload")
    assert answer.status_code == 500
    body = answer.json()
    assert (body["ok"], body["version"], body["reloaded"]) == (False, 1, [])
    assert body["error"]["type"] == "ZeroDivisionError"
    assert body["error"]["line"] == 1


def test_the_admin_path_and_header_are_configurable(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(
        env={"RELOAD_MIDDLEWARE_ADMIN_PATH": "/_ops/reload", "RELOAD_MIDDLEWARE_VERSION_HEADER": "x-app-build"},
        ready_path="/_ops/reload",
    )
    assert server.client.get("/__reload").status_code == 404
    assert server.client.get("/_ops/reload").json()["version"] == 1
    assert server.client.get("/").headers["x-app-build"] == "1"
    assert "x-reload-version" not in server.client.get("/").headers

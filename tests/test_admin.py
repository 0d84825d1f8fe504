"""Access control of the admin endpoint: the whole matrix on the decision, and the dangerous
cells again through a real server, checking that a refused request never triggers a reload."""

from __future__ import annotations

import pytest
from apps import STARLETTE_APP, write_app
from harness import AppTree, ServerFactory

from reload_middleware._admin import Admin, AdminRequest

LOOPBACK_HOST = {"host": "127.0.0.1:8000"}


def request(method: str = "GET", query: str = "", client: str | None = "127.0.0.1", **headers: str) -> AdminRequest:
    return AdminRequest(method, query, {**LOOPBACK_HOST, **headers}, client, has_body=False)


def status_of(admin: Admin, admin_request: AdminRequest) -> int:
    refusal = admin.refusal(admin_request)
    if refusal is not None:
        return refusal.status
    force = admin.parse_force(admin_request)
    return 200 if isinstance(force, bool) else force.status


@pytest.mark.parametrize(
    ("admin_request", "status"),
    [
        (request(), 200),
        (request("POST"), 200),
        (request("POST", "force=1"), 200),
        (request(client="::1", host="[::1]:8000"), 200),
        (request(host="localhost:8000"), 200),
        (request(client="127.0.0.2"), 200),
        (request(client="10.1.2.3"), 403),
        (request(client="192.168.0.7"), 403),
        (request(client=None), 403),
        (request(**{"x-forwarded-for": "203.0.113.9"}), 403),  # came through a proxy
        (request(forwarded="for=203.0.113.9"), 403),
        (request(**{"x-real-ip": "203.0.113.9"}), 403),
        (request(host="evil.example:8000"), 403),  # DNS rebinding: a foreign name resolving to us
        (request("POST", origin="http://evil.example"), 403),  # a page on another site
        (request("POST", origin="http://127.0.0.1:8000"), 200),
        (request("POST", **{"sec-fetch-site": "cross-site"}), 403),
        (request("PUT"), 405),
        (request("DELETE"), 405),
        (request("PATCH"), 405),
        (request("GET", "force=1"), 400),  # force only on POST
        (request("POST", "force=maybe"), 400),
        (request("POST", "debug=1"), 400),
        (request("POST", "force=1&extra=2"), 400),
        (request(**{"x-padding": "a" * 9000}), 431),
        (AdminRequest("POST", "", LOOPBACK_HOST, "127.0.0.1", has_body=True), 400),
    ],
)
def test_without_a_token_only_direct_loopback_clients_are_served(admin_request: AdminRequest, status: int) -> None:
    assert status_of(Admin(None, "/__reload"), admin_request) == status


@pytest.mark.parametrize(
    ("admin_request", "status"),
    [
        (request(), 401),
        (request(authorization="Bearer s3cret"), 200),
        (request("POST", authorization="bearer s3cret"), 200),
        (request(authorization="Bearer wrong"), 401),
        (request(authorization="Bearer s3cret-and-more"), 401),
        (request(authorization="Basic czNjcmV0"), 401),
        (request(authorization="s3cret"), 401),
        # A token admits remote clients and proxies, but never a foreign page.
        (request(client="203.0.113.9", authorization="Bearer s3cret", host="api.example"), 200),
        (request("POST", origin="http://evil.example", authorization="Bearer s3cret"), 403),
        (request("PUT", authorization="Bearer s3cret"), 405),
    ],
)
def test_with_a_token_every_request_must_carry_it(admin_request: AdminRequest, status: int) -> None:
    assert status_of(Admin("s3cret", "/__reload"), admin_request) == status


def test_a_browser_without_the_token_gets_the_login_page() -> None:
    refusal = Admin("s3cret", "/__reload").refusal(request(accept="text/html"))
    assert refusal is not None
    assert refusal.status == 401
    assert b"Token required" in refusal.body
    assert b"s3cret" not in refusal.body


def test_refused_requests_never_reload_through_a_real_server(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    tree.write("leaf.py", 'VALUE = "two"\n')
    hostile = [
        server.client.post("/__reload", headers={"x-forwarded-for": "203.0.113.9"}),
        server.client.post("/__reload", headers={"host": "evil.example"}),
        server.client.post("/__reload", headers={"origin": "http://evil.example"}),
        server.client.post("/__reload", content=b"force=1"),
        server.client.post("/__reload?force=1&now=1"),
        server.client.put("/__reload"),
        server.client.get("/__reload", headers={"x-padding": "a" * 9000}),
    ]
    assert [response.status_code for response in hostile] == [403, 403, 403, 400, 400, 405, 431]
    assert all(response.headers["content-type"].startswith("application/json") for response in hostile)
    assert server.client.get("/").text == "one"
    assert server.status()["version"] == 1
    assert server.client.post("/__reload").json()["version"] == 2


def test_the_token_is_required_through_a_real_server(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(env={"RELOAD_MIDDLEWARE_TOKEN": "s3cret"})
    assert server.client.get("/__reload").status_code == 401
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

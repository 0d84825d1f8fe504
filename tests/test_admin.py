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


LOCAL = "local-credential-of-this-user"


def decision_of(admin: Admin, admin_request: AdminRequest) -> int | str:
    """The status of a refusal; 200 for a reload that goes ahead; "full" or "redacted" for a read."""
    decision = admin.decide(admin_request)
    if isinstance(decision, bool):
        force = admin.parse_force(admin_request)
        if not isinstance(force, bool):
            return force.status
        if admin_request.method == "POST":
            return 200
        return "full" if decision else "redacted"
    return decision.status


@pytest.mark.parametrize(
    ("admin_request", "outcome"),
    [
        # A peer address is not a credential: without one nobody reloads, loopback or not.
        (request("POST"), 401),
        (request("POST", "force=1"), 401),
        (request("POST", client="::1", host="[::1]:8000"), 401),
        # Reads: direct loopback clients see the status without error details; others nothing.
        (request(), "redacted"),
        (request(client="::1", host="[::1]:8000"), "redacted"),
        (request(client="::ffff:127.0.0.1"), "redacted"),  # a dual-stack listener
        (request(host="localhost:8000"), "redacted"),
        (request(client="127.0.0.2"), "redacted"),
        (request(client="10.1.2.3"), 403),
        (request(client="192.168.0.7"), 403),
        (request(client="::ffff:10.1.2.3"), 403),
        (request(client=None), 403),
        (request(**{"x-forwarded-for": "203.0.113.9"}), 403),  # came through a proxy
        (request(forwarded="for=203.0.113.9"), 403),
        (request(**{"x-real-ip": "203.0.113.9"}), 403),
        (request(via="1.1 proxy"), 403),
        (request(**{"x-forwarded-proto": "https"}), 403),
        (request(**{"cf-connecting-ip": "203.0.113.9"}), 403),
        (request(**{"true-client-ip": "203.0.113.9"}), 403),
        (request(host="evil.example:8000"), 403),  # DNS rebinding: a foreign name resolving to us
        # Host is one host and an optional port, nothing else.
        (request(host="127.0.0.1:8000, evil.com"), 400),
        (request(host="[::1]:80:evil"), 400),
        (request(host="127.0.0.1:8000 evil.com"), 400),
        (request(host=""), 400),
        # With the credential: everything, from anywhere, but never from a foreign page.
        (request("POST", authorization=f"Bearer {LOCAL}"), 200),
        (request("POST", "force=1", authorization=f"bearer {LOCAL}"), 200),
        (request(authorization=f"Bearer {LOCAL}"), "full"),
        (request(cookie=f"reload_middleware_credential={LOCAL}"), "full"),  # reads only
        (request("POST", cookie=f"reload_middleware_credential={LOCAL}"), 401),
        (request("POST", client="203.0.113.9", host="api.example", authorization=f"Bearer {LOCAL}"), 200),
        (request("POST", authorization="Bearer wrong"), 401),
        (request("POST", authorization=f"Basic {LOCAL}"), 401),
        (request("POST", origin="http://evil.example", authorization=f"Bearer {LOCAL}"), 403),
        (request("POST", origin="http://127.0.0.1:8000", authorization=f"Bearer {LOCAL}"), 200),
        (request("POST", authorization=f"Bearer {LOCAL}", **{"sec-fetch-site": "cross-site"}), 403),
        (request("PUT"), 405),
        (request("DELETE"), 405),
        (request("PATCH"), 405),
        (request("GET", "force=1"), 400),  # force only on POST
        (request("POST", "force=maybe", authorization=f"Bearer {LOCAL}"), 400),
        (request("POST", "debug=1", authorization=f"Bearer {LOCAL}"), 400),
        (request(**{"x-padding": "a" * 9000}), 431),
        (AdminRequest("POST", "", LOOPBACK_HOST, "127.0.0.1", has_body=True), 400),
        # An absolute-form target (`POST http://evil.com/__reload`) must name the Host it sent.
        (AdminRequest("GET", "", LOOPBACK_HOST, "127.0.0.1", target_authority="evil.com"), 400),
        (AdminRequest("GET", "", LOOPBACK_HOST, "127.0.0.1", target_authority="127.0.0.1:8000"), "redacted"),
    ],
)
def test_a_reload_needs_the_credential_and_loopback_only_reads(admin_request: AdminRequest, outcome: int | str) -> None:
    assert decision_of(Admin(None, "/__reload", LOCAL), admin_request) == outcome


@pytest.mark.parametrize(
    ("admin_request", "outcome"),
    [
        (request(), "redacted"),
        (request("POST"), 401),
        (request(authorization="Bearer s3cret"), "full"),
        (request("POST", authorization="bearer s3cret"), 200),
        (request("POST", authorization=f"Bearer {LOCAL}"), 401),  # a configured token replaces it
        (request("POST", authorization="Bearer wrong"), 401),
        (request("POST", authorization="Bearer s3cret-and-more"), 401),
        (request("POST", authorization="Basic czNjcmV0"), 401),
        (request("POST", authorization="s3cret"), 401),
        (request(client="203.0.113.9", host="api.example"), 403),
        (request(client="203.0.113.9", authorization="Bearer s3cret", host="api.example"), "full"),
        (request("POST", origin="http://evil.example", authorization="Bearer s3cret"), 403),
        (request("PUT", authorization="Bearer s3cret"), 405),
    ],
)
def test_with_a_token_it_is_the_credential(admin_request: AdminRequest, outcome: int | str) -> None:
    assert decision_of(Admin("s3cret", "/__reload", None), admin_request) == outcome


def test_a_non_ascii_token_matches_its_utf8_bytes_as_sent() -> None:
    token = "clé-secrète"
    sent = token.encode("utf-8").decode("latin-1")  # what a server makes of the raw header bytes
    assert decision_of(Admin(token, "/__reload"), request("POST", authorization=f"Bearer {sent}")) == 200
    assert decision_of(Admin(token, "/__reload"), request("POST", authorization=f"Bearer {token}")) == 401


def test_a_remote_browser_without_the_token_gets_the_login_page() -> None:
    refusal = Admin("s3cret", "/__reload").refusal(request(accept="text/html", client="203.0.113.9"))
    assert refusal is not None
    assert refusal.status == 401
    assert b"Token required" in refusal.body
    assert b"s3cret" not in refusal.body


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

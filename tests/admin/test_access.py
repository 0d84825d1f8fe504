"""Access control of the admin endpoint: the whole matrix on the decision, in-process (the dangerous
cells run again through a real server in ``tests/e2e/test_admin.py``)."""

from __future__ import annotations

import json

import pytest

from reload_middleware._admin.access import AccessRules, AdminRequest
from reload_middleware._local import ServerCredential, credential_path, proof_header, server_proof

LOOPBACK_HOST = {"host": "127.0.0.1:8000"}


def request(method: str = "GET", query: str = "", client: str | None = "127.0.0.1", **headers: str) -> AdminRequest:
    return AdminRequest(method, query, {**LOOPBACK_HOST, **headers}, client, has_body=False)


LOCAL = "local-credential-of-this-user"


def with_local_credential(value: str = LOCAL) -> ServerCredential:
    """This user's local credential file holds ``value`` (in this test's private directory)."""
    path = credential_path()
    path.write_text(value)
    path.chmod(0o600)
    return ServerCredential()


def decision_of(admin: AccessRules, admin_request: AdminRequest) -> int | str:
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
        # Never a cookie: browsers send one to every server of the host, another user's too.
        (request(cookie=f"reload_middleware_credential={LOCAL}"), "redacted"),
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
    assert decision_of(AccessRules(None, "/__reload", with_local_credential()), admin_request) == outcome


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
    assert decision_of(AccessRules("s3cret", "/__reload", None), admin_request) == outcome


def test_a_non_ascii_token_matches_its_utf8_bytes_as_sent() -> None:
    token = "clé-secrète"
    sent = token.encode("utf-8").decode("latin-1")  # what a server makes of the raw header bytes
    assert decision_of(AccessRules(token, "/__reload"), request("POST", authorization=f"Bearer {sent}")) == 200
    assert decision_of(AccessRules(token, "/__reload"), request("POST", authorization=f"Bearer {token}")) == 401


def test_a_remote_browser_without_the_token_gets_the_login_page() -> None:
    refusal = AccessRules("s3cret", "/__reload").refusal(request(accept="text/html", client="203.0.113.9"))
    assert refusal is not None
    assert refusal.status == 401
    assert b"Token required" in refusal.body
    assert b"s3cret" not in refusal.body


def challenged(rules: AccessRules, challenge: str = "c" * 22) -> dict[str, str]:
    answer = rules.challenge(request("GET", f"challenge={challenge}"))
    assert answer is not None
    assert answer.status == 200
    return json.loads(answer.body)  # type: ignore[no-any-return]


def test_a_challenge_is_answered_with_the_proof_that_the_server_holds_the_credential() -> None:
    rules = AccessRules(None, "/__reload", with_local_credential())
    answer = challenged(rules)
    assert answer["proof"] == server_proof(LOCAL, "c" * 22, answer["nonce"])
    assert LOCAL not in json.dumps(answer)


def test_a_proof_authorises_its_one_request_once() -> None:
    rules = AccessRules(None, "/__reload", with_local_credential())
    nonce = challenged(rules)["nonce"]
    proven = request("POST", "force=1", authorization=proof_header(LOCAL, nonce, "POST", "force=1"))
    assert decision_of(rules, proven) == 200
    assert decision_of(rules, proven) == 401  # replayed: the nonce is used up
    nonce = challenged(rules)["nonce"]
    other = request("POST", "", authorization=proof_header(LOCAL, nonce, "POST", "force=1"))
    assert decision_of(rules, other) == 401  # a proof for another request
    forged = request(
        "POST", "", authorization=proof_header("not-the-credential", challenged(rules)["nonce"], "POST", "")
    )
    assert decision_of(rules, forged) == 401
    unissued = request("POST", "", authorization=proof_header(LOCAL, "n" * 32, "POST", ""))
    assert decision_of(rules, unissued) == 401


@pytest.mark.parametrize("challenge", ["short", "x" * 129, "<script>" * 3, ""])
def test_a_malformed_challenge_is_refused(challenge: str) -> None:
    answer = AccessRules(None, "/__reload", with_local_credential()).challenge(request("GET", f"challenge={challenge}"))
    assert answer is not None
    assert answer.status == 400


def test_a_removed_credential_file_is_published_again_and_a_new_one_is_accepted_too() -> None:
    credential = with_local_credential()
    credential_path().unlink()  # a /tmp cleaner
    assert credential.current() == LOCAL
    assert credential_path().read_text() == LOCAL
    credential_path().unlink()
    with_local_credential("created-by-a-server-started-since")
    assert credential.accepted() == (LOCAL,)  # not read on event loops: read at the next challenge
    assert credential.current() == "created-by-a-server-started-since"
    assert credential.accepted() == ("created-by-a-server-started-since", LOCAL)

"""Who may use the admin endpoint, and the requests and responses it deals in (ASGI or WSGI alike).

A peer address proves nothing (a proxy on the same machine forwards strangers from 127.0.0.1), so a
reload always needs a credential; without one, only a direct loopback client may read the status,
and without error details.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .._local import CHALLENGE_PARAMETER, PROOF_SCHEME, ServerCredential, is_loopback_host
from .pages import ERROR_PAGE_QUERY, login_page
from .proofs import Challenges

# Headers proxies add: a request carrying one came through a proxy, whatever its peer address.
_FORWARDING_HEADERS = (
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-original-forwarded-for",
    "x-real-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "via",
)
_FORCE_VALUES = {"1": True, "true": True, "0": False, "false": False}
# One host (a name, an IPv4 address or a bracketed IPv6 address) and an optional port: nothing else.
_HOST = re.compile(r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._-]+))(?::[0-9]{1,5})?")
MAX_HEADER_BYTES = 8192


@dataclass(frozen=True)
class AdminRequest:
    method: str
    query_string: str
    headers: Mapping[str, str]  # lower-case names
    client_host: str | None
    has_body: bool = False
    # The authority of an absolute-form request target (``POST http://host/path``), if one was sent.
    target_authority: str | None = None

    def wants_html(self) -> bool:
        return "text/html" in self.headers.get("accept", "")

    @classmethod
    def from_scope(cls, scope: Mapping[str, Any]) -> AdminRequest:
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", ()):
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        client = scope.get("client")
        raw_path = scope.get("raw_path") or b""
        target = raw_path.decode("latin-1") if b"://" in raw_path else None
        return cls._make(scope["method"], scope.get("query_string", b"").decode("latin-1"), headers, client, target)

    @classmethod
    def from_environ(cls, environ: Mapping[str, Any]) -> AdminRequest:
        headers = {
            key[5:].replace("_", "-").lower(): str(value) for key, value in environ.items() if key.startswith("HTTP_")
        }
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").lower()] = str(environ[key])
        client = (environ["REMOTE_ADDR"], 0) if environ.get("REMOTE_ADDR") else None
        raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "")
        target = raw if "://" in raw else None
        method, query = str(environ.get("REQUEST_METHOD", "GET")), str(environ.get("QUERY_STRING", ""))
        return cls._make(method, query, headers, client, target)

    @classmethod
    def _make(cls, method: str, query: str, headers: dict[str, str], client: Any, target: str | None) -> AdminRequest:
        has_body = headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers
        authority = urlsplit(target).netloc if target is not None else None
        return cls(method, query, headers, client[0] if client else None, has_body, authority)


@dataclass(frozen=True)
class AdminResponse:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(
        cls, status: int, payload: Mapping[str, Any], headers: list[tuple[str, str]] | None = None
    ) -> AdminResponse:
        return cls(status, json.dumps(payload, indent=2).encode(), "application/json", headers or [])

    def all_headers(self) -> list[tuple[str, str]]:
        return [
            ("content-type", f"{self.content_type}; charset=utf-8"),
            ("content-length", str(len(self.body))),
            ("cache-control", "no-store"),
            *self.headers,
        ]


def error_response(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> AdminResponse:
    return AdminResponse.json(status, {"ok": False, "error": message}, headers)


def host_name(host_header: str) -> str | None:
    """The host of a ``Host`` header, parsed strictly: ``[::1]:8000`` -> ``::1``; ``None`` for
    anything but one host and an optional port (``127.0.0.1:8000, evil.com``, ``[::1]:80:evil``)."""
    match = _HOST.fullmatch(host_header.strip())
    if match is None:
        return None
    return match["ipv6"] or match["name"]


class AccessRules:
    """Decides who may use the endpoint and renders its answers.

    A peer address proves nothing (a proxy on the same machine forwards strangers from 127.0.0.1),
    so a reload always needs a credential: the configured token or, without one, this user's
    local credential. Without a credential, only a direct loopback client may read the status,
    and without error details.
    """

    def __init__(self, token: str | None, path: str, local_credential: ServerCredential | None = None) -> None:
        self._token = token
        self._local = local_credential
        self._path = path
        self._challenges = Challenges()

    def _secrets(self) -> tuple[str, ...]:
        if self._token:
            return (self._token,)
        return self._local.accepted() if self._local is not None else ()

    def challenge(self, request: AdminRequest) -> AdminResponse | None:
        """The answer to ``GET ?challenge=...`` (``trigger`` asking this server to prove it holds
        the credential before it authorises anything), or ``None`` for any other request."""
        pairs = parse_qsl(request.query_string, keep_blank_values=True)
        if request.method != "GET" or [key for key, _ in pairs] != [CHALLENGE_PARAMETER]:
            return None
        refusal = self._malformed(request)
        if refusal is not None:
            return refusal
        challenge = pairs[0][1]
        if not Challenges.is_challenge(challenge):
            return error_response(400, "a challenge is 16 to 128 URL-safe characters")
        secret = self._token or (self._local.current() if self._local is not None else None)
        if secret is None:
            return error_response(403, "this server has no credential to prove")
        return AdminResponse.json(200, self._challenges.answer(challenge, secret))

    def parse_force(self, request: AdminRequest) -> bool | AdminResponse:
        """``?force=1`` on a POST (``?page=error`` on a GET: the error page); any other parameter
        is a client error."""
        force = False
        if request.method == "GET" and request.query_string == ERROR_PAGE_QUERY:
            return False
        for key, value in parse_qsl(request.query_string, keep_blank_values=True):
            if key != "force" or request.method != "POST" or value.lower() not in _FORCE_VALUES:
                return error_response(
                    400, f"unexpected query parameter {key}={value!r}; only POST ?force=1 is accepted"
                )
            force = _FORCE_VALUES[value.lower()]
        return force

    def refusal(self, request: AdminRequest) -> AdminResponse | None:
        """``None`` when the request may be served; otherwise the error response to send."""
        decision = self.decide(request)
        return decision if isinstance(decision, AdminResponse) else None

    def decide(self, request: AdminRequest) -> AdminResponse | bool:
        """A refusal, or whether the request may see everything (``True``: it carries the
        credential) or only what a direct loopback client may (``False``)."""
        refusal = self._malformed(request)
        if refusal is not None:
            return refusal
        if self.carries_credential(request):
            return True
        if request.method == "POST":
            return error_response(
                401,
                "a reload needs a credential: 'Authorization: Bearer <token>' with RELOAD_MIDDLEWARE_TOKEN, or "
                "this user's local credential, which 'reload-middleware trigger URL' sends by itself",
                [("www-authenticate", "Bearer")],
            )
        if self._is_direct_loopback(request):
            return False
        if request.wants_html():
            return AdminResponse(401, login_page(self._path).encode(), "text/html", [("www-authenticate", "Bearer")])
        return error_response(403, "without a credential only direct loopback clients may read the status")

    def _malformed(self, request: AdminRequest) -> AdminResponse | None:
        """The refusal of a request no credential could make acceptable, if it is one."""
        if request.method not in ("GET", "POST"):
            return error_response(405, f"method {request.method} is not allowed", [("allow", "GET, POST")])
        if sum(len(k) + len(v) for k, v in request.headers.items()) > MAX_HEADER_BYTES:
            return error_response(431, "request headers too large")
        host = request.headers.get("host", "")
        if host_name(host) is None:
            return error_response(400, "the Host header must name one host, with an optional port")
        if request.target_authority is not None and request.target_authority.lower() != host.lower():
            return error_response(400, "the request target names another host than the Host header")
        if not self._same_origin(request):
            return error_response(403, "cross-origin requests are refused")
        if request.has_body:
            return error_response(400, "this endpoint takes no request body")
        return None

    def carries_credential(self, request: AdminRequest) -> bool:
        """Whether the request carries the credential: as a bearer token, or as ``trigger``'s
        one-time proof. Never a cookie: browsers send one to every port of the host."""
        accepted = self._secrets()
        if not accepted:
            return False
        authorization = request.headers.get("authorization", "")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == PROOF_SCHEME:  # trigger's: bound to one nonce and this very request
            return self._challenges.accepts(authorization, request.method, request.query_string, accepted)
        if scheme.lower() != "bearer":
            return False
        supplied = value.strip()
        # Header values arrive as latin-1 text of the bytes sent: compare those bytes with the
        # secrets' UTF-8 bytes, in constant time.
        given = supplied.encode("latin-1", "replace")
        return any(hmac.compare_digest(given, secret.encode("utf-8")) for secret in accepted)

    @staticmethod
    def _is_direct_loopback(request: AdminRequest) -> bool:
        # A proxy in front makes every client look local; a foreign Host is DNS rebinding.
        if any(name in request.headers for name in _FORWARDING_HEADERS):
            return False
        return is_loopback_host(request.client_host) and is_loopback_host(host_name(request.headers.get("host", "")))

    @staticmethod
    def _same_origin(request: AdminRequest) -> bool:
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return False
        origin = request.headers.get("origin")
        if origin is None:
            return True
        return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


REASONS = {200: "OK", 303: "See Other", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
REASONS |= {405: "Method Not Allowed", 431: "Request Header Fields Too Large", 500: "Internal Server Error"}

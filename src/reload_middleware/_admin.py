"""The admin endpoint, independent of ASGI or WSGI: access control, status and reload answers.

The middlewares build an ``AdminRequest`` from the ASGI scope or the WSGI environ and hand it to
``AdminEndpoint.handle()`` (ASGI from a worker thread): the one place that decides, reloads and
renders. The error page shown while a reload is failing is rendered here too.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ._errors import ErrorReport
from ._page import error_page, error_summary, login_page, status_page
from ._pipeline import Pipeline

_FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")
_LOOPBACK_NAMES = ("localhost",)
_FORCE_VALUES = {"1": True, "true": True, "0": False, "false": False}
MAX_HEADER_BYTES = 8192


@dataclass(frozen=True)
class AdminRequest:
    method: str
    query_string: str
    headers: Mapping[str, str]  # lower-case names
    client_host: str | None
    has_body: bool = False

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
        return cls._make(scope["method"], scope.get("query_string", b"").decode("latin-1"), headers, client)

    @classmethod
    def from_environ(cls, environ: Mapping[str, Any]) -> AdminRequest:
        headers = {
            key[5:].replace("_", "-").lower(): str(value) for key, value in environ.items() if key.startswith("HTTP_")
        }
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").lower()] = str(environ[key])
        client = (environ["REMOTE_ADDR"], 0) if environ.get("REMOTE_ADDR") else None
        return cls._make(
            str(environ.get("REQUEST_METHOD", "GET")), str(environ.get("QUERY_STRING", "")), headers, client
        )

    @classmethod
    def _make(cls, method: str, query: str, headers: dict[str, str], client: Any) -> AdminRequest:
        has_body = headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers
        return cls(method, query, headers, client[0] if client else None, has_body)


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


def _error(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> AdminResponse:
    return AdminResponse.json(status, {"ok": False, "error": message}, headers)


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() in _LOOPBACK_NAMES


def _host_name(host_header: str) -> str:
    """The name part of a Host header: ``[::1]:8000`` -> ``::1``, ``localhost:8000`` -> ``localhost``."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class Admin:
    """Decides who may use the endpoint and renders its answers."""

    def __init__(self, token: str | None, path: str) -> None:
        self._token = token.encode() if token else None
        self._path = path

    def parse_force(self, request: AdminRequest) -> bool | AdminResponse:
        """``?force=1`` on a POST; any other parameter is a client error."""
        force = False
        for key, value in parse_qsl(request.query_string, keep_blank_values=True):
            if key != "force" or request.method != "POST" or value.lower() not in _FORCE_VALUES:
                return _error(400, f"unexpected query parameter {key}={value!r}; only POST ?force=1 is accepted")
            force = _FORCE_VALUES[value.lower()]
        return force

    def refusal(self, request: AdminRequest) -> AdminResponse | None:
        """``None`` when the request may be served; otherwise the error response to send."""
        if request.method not in ("GET", "POST"):
            return _error(405, f"method {request.method} is not allowed", [("allow", "GET, POST")])
        if sum(len(k) + len(v) for k, v in request.headers.items()) > MAX_HEADER_BYTES:
            return _error(431, "request headers too large")
        if self._token is not None:
            supplied = request.headers.get("authorization", "")
            scheme, _, credentials = supplied.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(), self._token):
                if request.wants_html() and request.method == "GET":
                    page = login_page(self._path).encode()
                    return AdminResponse(401, page, "text/html", [("www-authenticate", "Bearer")])
                return _error(
                    401, "a valid 'Authorization: Bearer <token>' is required", [("www-authenticate", "Bearer")]
                )
        elif not self._is_trusted_loopback(request):
            return _error(403, "without RELOAD_MIDDLEWARE_TOKEN only direct loopback clients may use this endpoint")
        if not self._same_origin(request):
            return _error(403, "cross-origin requests are refused")
        if request.has_body:
            return _error(400, "this endpoint takes no request body")
        return None

    @staticmethod
    def _is_trusted_loopback(request: AdminRequest) -> bool:
        # A proxy in front makes every client look local; a foreign Host is DNS rebinding.
        if any(name in request.headers for name in _FORWARDING_HEADERS):
            return False
        host_name = _host_name(request.headers.get("host", ""))
        return is_loopback_host(request.client_host) and is_loopback_host(host_name)

    @staticmethod
    def _same_origin(request: AdminRequest) -> bool:
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return False
        origin = request.headers.get("origin")
        if origin is None:
            return True
        return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()

    def render_status(self, request: AdminRequest, status: Mapping[str, Any]) -> AdminResponse:
        if request.wants_html():
            return AdminResponse(200, status_page(status, self._path).encode(), "text/html")
        return AdminResponse.json(200, status)

    def render_reload(self, request: AdminRequest, outcome: Mapping[str, Any]) -> AdminResponse:
        if request.wants_html():  # a form on the status page: show the page again, with the outcome
            return AdminResponse(303, b"", "text/plain", [("location", self._path)])
        return AdminResponse.json(200 if outcome["ok"] else 500, outcome)


class AdminEndpoint:
    """Decides who may use the endpoint, runs what it asks for, and renders the answers."""

    def __init__(self, pipeline: Pipeline) -> None:
        config = pipeline.config
        self._pipeline = pipeline
        self._admin = Admin(config.token, config.admin_path or "")
        self._version_header = config.version_header

    def handle(self, request: AdminRequest) -> AdminResponse:
        """Answer one request; a ``POST`` reloads and waits for the outcome (call it off the event loop)."""
        response = self._admin.refusal(request)
        if response is None:
            force = self._admin.parse_force(request)
            if isinstance(force, AdminResponse):
                response = force
            elif request.method == "GET":
                response = self._admin.render_status(request, self._pipeline.status())
            else:
                outcome = self._pipeline.request(force=force, sweep=True).wait()
                self._pipeline.reloader.tell_other_workers(force)
                response = self._admin.render_reload(request, outcome.as_dict() if outcome else {"ok": False})
        if self._version_header is not None:
            number = str(self._pipeline.versions.current.number)
            response = AdminResponse(
                response.status,
                response.body,
                response.content_type,
                [*response.headers, (self._version_header, number)],
            )
        return response


def failure_page(report: ErrorReport, admin_path: str) -> AdminResponse:
    """What a browser gets while the latest reload is failing."""
    return AdminResponse(500, error_page(report.as_dict(), admin_path).encode(), "text/html")


def failure_header(report: ErrorReport) -> tuple[str, str]:
    """What an API client gets beside the old version's answer while the latest reload is failing."""
    return ("x-reload-error", error_summary(report.as_dict()))


REASONS = {200: "OK", 303: "See Other", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
REASONS |= {405: "Method Not Allowed", 431: "Request Header Fields Too Large", 500: "Internal Server Error"}

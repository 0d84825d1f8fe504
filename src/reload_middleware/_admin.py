"""The admin endpoint, independent of ASGI or WSGI: access control, status and reload answers.

The middlewares build an ``AdminRequest`` from the ASGI scope or the WSGI environ and hand it to
``AdminEndpoint.handle()`` (ASGI from a worker thread): the one place that decides, reloads and
renders. The error page shown while a reload is failing is rendered here too.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ._config import ENV_PREFIX
from ._credential import local_credential
from ._errors import ErrorReport
from ._live import LiveRefresh
from ._page import error_page, error_summary, login_page, status_page
from ._pipeline import Pipeline

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
_LOOPBACK_NAMES = ("localhost",)
_FORCE_VALUES = {"1": True, "true": True, "0": False, "false": False}
# One host (a name, an IPv4 address or a bracketed IPv6 address) and an optional port: nothing else.
_HOST = re.compile(r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._-]+))(?::[0-9]{1,5})?")
MAX_HEADER_BYTES = 8192
COOKIE = "reload_middleware_credential"

logger = logging.getLogger(__name__)


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


def _error(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> AdminResponse:
    return AdminResponse.json(status, {"ok": False, "error": message}, headers)


def is_loopback_host(host: str | None) -> bool:
    """``127.0.0.0/8``, ``::1``, their IPv4-mapped forms (a dual-stack listener) and ``localhost``."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host.lower() in _LOOPBACK_NAMES
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def host_name(host_header: str) -> str | None:
    """The host of a ``Host`` header, parsed strictly: ``[::1]:8000`` -> ``::1``; ``None`` for
    anything but one host and an optional port (``127.0.0.1:8000, evil.com``, ``[::1]:80:evil``)."""
    match = _HOST.fullmatch(host_header.strip())
    if match is None:
        return None
    return match["ipv6"] or match["name"]


class Admin:
    """Decides who may use the endpoint and renders its answers.

    A peer address proves nothing (a proxy on the same machine forwards strangers from 127.0.0.1),
    so a reload always needs a credential: the configured token or, without one, this user's
    local credential. Without a credential, only a direct loopback client may read the status,
    and without error details.
    """

    def __init__(self, token: str | None, path: str, local_credential: str | None = None) -> None:
        secret = token or local_credential
        self._secret = secret.encode("utf-8") if secret else None
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
        decision = self.decide(request)
        return decision if isinstance(decision, AdminResponse) else None

    def decide(self, request: AdminRequest) -> AdminResponse | bool:
        """A refusal, or whether the request may see everything (``True``: it carries the
        credential) or only what a direct loopback client may (``False``)."""
        if request.method not in ("GET", "POST"):
            return _error(405, f"method {request.method} is not allowed", [("allow", "GET, POST")])
        if sum(len(k) + len(v) for k, v in request.headers.items()) > MAX_HEADER_BYTES:
            return _error(431, "request headers too large")
        host = request.headers.get("host", "")
        if host_name(host) is None:
            return _error(400, "the Host header must name one host, with an optional port")
        if request.target_authority is not None and request.target_authority.lower() != host.lower():
            return _error(400, "the request target names another host than the Host header")
        if not self._same_origin(request):
            return _error(403, "cross-origin requests are refused")
        if request.has_body:
            return _error(400, "this endpoint takes no request body")
        if self.carries_credential(request, cookie=request.method == "GET"):
            return True
        if request.method == "POST":
            return _error(
                401,
                "a reload needs a credential: 'Authorization: Bearer <token>' with RELOAD_MIDDLEWARE_TOKEN, or "
                "this user's local credential, which 'reload-middleware trigger URL' sends by itself",
                [("www-authenticate", "Bearer")],
            )
        if self._is_direct_loopback(request):
            return False
        if request.wants_html():
            return AdminResponse(401, login_page(self._path).encode(), "text/html", [("www-authenticate", "Bearer")])
        return _error(403, "without a credential only direct loopback clients may read the status")

    def carries_credential(self, request: AdminRequest, *, cookie: bool) -> bool:
        """Whether the request carries the credential: as a bearer token, or (``cookie``, for reads
        only) in the cookie the status page sets, which browsers never send cross-site."""
        if self._secret is None:
            return False
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        supplied: str | None = value.strip() if scheme.lower() == "bearer" else None
        if supplied is None and cookie:
            supplied = _cookie(request.headers.get("cookie", ""), COOKIE)
        if supplied is None:
            return False
        # Header values arrive as latin-1 text of the bytes sent: compare those bytes with the
        # token's UTF-8 bytes, in constant time.
        return hmac.compare_digest(supplied.encode("latin-1", "replace"), self._secret)

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

    def render_status(self, request: AdminRequest, status: Mapping[str, Any], *, full: bool = True) -> AdminResponse:
        shown = status if full else redacted(status)
        if request.wants_html():
            return AdminResponse(200, status_page(shown, self._path, full=full).encode(), "text/html")
        return AdminResponse.json(200, shown)

    def render_reload(self, request: AdminRequest, outcome: Mapping[str, Any]) -> AdminResponse:
        if request.wants_html():  # a form on the status page: show the page again, with the outcome
            return AdminResponse(303, b"", "text/plain", [("location", self._path)])
        return AdminResponse.json(200 if outcome["ok"] else 500, outcome)


class AdminEndpoint:
    """Decides who may use the endpoint, runs what it asks for, and renders the answers."""

    def __init__(self, pipeline: Pipeline, environ: Mapping[str, str] | None = None) -> None:
        config = pipeline.config
        self._pipeline = pipeline
        self._path = config.admin_path or ""
        self._credential = None if config.token else local_credential()
        self._admin = Admin(config.token, self._path, self._credential)
        self._version_header = config.version_header
        # Live refresh's paths and script tag (``None`` when it is off), for both middlewares too.
        self.live = LiveRefresh(self._path) if config.live_refresh and self._path else None
        self._base_url = (os.environ if environ is None else environ).get(f"{ENV_PREFIX}_URL", "").rstrip("/")
        pipeline.announce = self._announce

    def _announce(self) -> None:
        """Log the status-page link that carries the local credential (in the fragment, which no
        browser sends to a server: it never reaches an access log or a referrer)."""
        if self._credential is not None and self._path:
            base = self._base_url or "http://<this server>"
            logger.info("Reload status page: %s%s#token=%s", base, self._path, self._credential)

    def handle(self, request: AdminRequest) -> AdminResponse:
        """Answer one request; a ``POST`` reloads and waits for the outcome (call it off the event loop)."""
        decision = self._admin.decide(request)
        if isinstance(decision, AdminResponse):
            response = decision
        else:
            force = self._admin.parse_force(request)
            if isinstance(force, AdminResponse):
                response = force
            elif request.method == "GET":
                response = self._admin.render_status(request, status_of(self._pipeline), full=decision)
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

    def read_access(self, request: AdminRequest) -> AdminResponse | bool:
        """For the live-refresh script and events: a refusal, or whether error details may be shown."""
        if request.method != "GET":
            return _error(405, f"method {request.method} is not allowed", [("allow", "GET")])
        if request.query_string and not request.query_string.startswith("v="):
            return _error(400, "unexpected query parameters")
        return self._admin.decide(request)

    def while_failing(self, request: AdminRequest, report: ErrorReport) -> AdminResponse | tuple[str, str]:
        """What a request gets while the latest reload is failing: a browser the error page, an API
        client a header beside the old version's answer. The file, the source lines, the message
        and the traceback only with the credential (a secret may stand on the failing line)."""
        full = self._admin.carries_credential(request, cookie=True)
        if request.wants_html():
            page = error_page(report.as_dict(), self._path, full=full).encode()
            if self.live is not None:  # the page reloads itself once the error is fixed
                page += self.live.tag(self._pipeline.versions.current.number)
            return AdminResponse(500, page, "text/html")
        summary = report.as_dict() if full else {"type": report.type, "message": "details on the admin endpoint"}
        return ("x-reload-error", error_summary(summary))


def status_of(pipeline: Pipeline) -> dict[str, Any]:
    """The status JSON (what ``GET`` shows a client with the credential)."""
    config, watcher = pipeline.config, pipeline.watcher
    listening = watcher is not None and watcher.running
    return {
        "version": pipeline.versions.current.number,
        **pipeline.history.as_dict(),
        "reloading": pipeline.reloading,
        "tracked_modules": len(pipeline.reloader.graph.modules),
        "watching": config.watch and listening,
        "watcher": watcher.describe() if watcher is not None else None,
        "limits": {
            "build_timeout": config.build_timeout,
            "drain_timeout": config.drain_timeout,
            "max_versions": config.max_versions,
        },
        "process": {"pid": os.getpid(), "shared_trigger": str(pipeline.reloader.trigger.path), "listening": listening},
        "versions": pipeline.versions.describe(),
        "leaked_versions": pipeline.reloader.leaks.leaked,
    }


def redacted(status: Mapping[str, Any]) -> dict[str, Any]:
    """The status for a client without the credential: no message, traceback or file path."""
    shown = dict(status)
    error = status.get("last_error")
    if error:
        shown["last_error"] = {key: error[key] for key in ("type", "time", "resolved") if key in error}
    shown["restart_required"] = len(status.get("restart_required") or ())
    shown["leaked_versions"] = [
        {key: value for key, value in leak.items() if key != "held_by"} for leak in status.get("leaked_versions", ())
    ]
    shown["process"] = {key: value for key, value in status.get("process", {}).items() if key != "shared_trigger"}
    if shown.get("watcher"):
        shown["watcher"] = {key: value for key, value in shown["watcher"].items() if key != "last_error"}
    shown["details"] = "hidden: send the credential (Authorization: Bearer ...) to see error details"
    return shown


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return unquote(value)
    return None


REASONS = {200: "OK", 303: "See Other", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
REASONS |= {405: "Method Not Allowed", 431: "Request Header Fields Too Large", 500: "Internal Server Error"}

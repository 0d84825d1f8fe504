"""Live refresh: pages that reload themselves after each successful reload, and show the error
while the latest one is failing.

A browser's page navigation served through the middleware gets one line at the end of its HTML,
``<script src="/__reload/live.js?v=N">`` (N: the version that served it). The script listens to
``/__reload/events``, an event stream of the serving version and the failing reload, if any: a new
version reloads the page, a failure shows an overlay, and the next success reloads the page
without it. The stream follows the admin endpoint's access rules (error details only with the
credential) and is short-lived: it ends after a few seconds and the browser reconnects, so that
an open tab never holds a server's shutdown back for long.

Only whole pages get the script (200, or an error page; never a 206 part, a redirect or a HEAD
answer), and it goes without ``Content-Length`` (the server frames the longer body). Pages are
left alone when their response is compressed, is not HTML, or has a Content-Security-Policy (in
any header, or in a ``<meta>`` of the page) that does not allow scripts from 'self' and inline
ones, and connections to 'self'. To keep compressed pages injectable, a navigation is forwarded
without ``Accept-Encoding``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any

import anyio

from .._pipeline import History

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

# How long one event stream lasts before the browser reconnects, and how often it looks for news.
STREAM_SECONDS = 3.0
_POLL_SECONDS = 0.05

SCRIPT = r"""(function () {
  "use strict";
  var script = document.currentScript;
  var url = new URL(script.src);
  var base = url.pathname.replace(/\/live\.js$/, "");
  var version = Number(url.searchParams.get("v"));
  var key = "reload-middleware-token";  // the credential, as the admin pages keep it (per origin)
  var overlay = null;
  function line(tag, text, style) {
    var node = document.createElement(tag);
    node.textContent = text;
    if (style) node.setAttribute("style", style);
    overlay.appendChild(node);
  }
  function show(error) {
    if (overlay) overlay.remove();
    overlay = document.createElement("div");
    overlay.id = "reload-middleware-overlay";
    overlay.setAttribute("style", "position:fixed;inset:0;z-index:2147483647;overflow:auto;" +
      "background:rgba(20,24,28,.97);color:#f5f5f5;font:15px/1.5 system-ui,sans-serif;padding:2rem");
    line("h1", "Reload failed: " + error.type, "font-size:1.4rem;color:#ff8a80;margin:0 0 .5rem");
    if (error.message) line("p", error.message, "margin:0 0 .5rem");
    if (error.file) line("p", error.file + ", line " + error.line, "font-family:monospace;margin:0 0 .5rem");
    if (error.traceback) line("pre", error.traceback, "background:#000;padding:1rem;overflow:auto;font-size:13px");
    if (!error.message && !localStorage.getItem(key)) {
      line("p", "The details are on the status page (open the link the server logged).");
    }
    line("p", "This page shows the previous version. Fix the file and save: the page reloads by itself.",
      "color:#b0bec5");
    document.documentElement.appendChild(overlay);
  }
  // The stream carries no credential (an EventSource sends cookies only, and there is none):
  // the details come from the admin endpoint, with the credential this origin keeps, if any.
  var detailed = null;
  function showWithDetails(error) {
    if (detailed && detailed.type === error.type) { show(detailed); return; }
    show(error);
    var token = localStorage.getItem(key);
    if (error.message || !token) return;
    fetch(base, {headers: {Accept: "application/json", Authorization: "Bearer " + token}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (status) {
        var last = status && status.last_error;
        if (last && last.message && !last.resolved && overlay) { detailed = last; show(last); }
      })
      .catch(function () {});
  }
  var source = new EventSource(base + "/events");
  source.addEventListener("state", function (event) {
    var state = JSON.parse(event.data);
    if (state.version !== version) { source.close(); location.reload(); return; }
    if (state.failing) showWithDetails(state.failing);
    else { detailed = null; if (overlay) { overlay.remove(); overlay = null; } }
  });
})();
"""


class LiveRefresh:
    """What the middleware needs for live refresh under the admin path ``admin_path``."""

    def __init__(self, admin_path: str) -> None:
        self.admin_path = admin_path
        self.script_path = f"{admin_path}/live.js"
        self.events_path = f"{admin_path}/events"

    def tag(self, version: int, root_path: str = "") -> bytes:
        return f'\n<script src="{root_path}{self.script_path}?v={version}"></script>\n'.encode()

    @staticmethod
    def wants_environ(environ: Mapping[str, Any]) -> bool:
        return environ.get("REQUEST_METHOD") == "GET" and "text/html" in str(environ.get("HTTP_ACCEPT", ""))

    @staticmethod
    def wants(scope: Mapping[str, Any]) -> bool:
        """A browser navigation: the only requests whose HTML answer gets the script."""
        if scope["method"] != "GET":
            return False
        for name, value in scope.get("headers", ()):  # noqa: SIM110 (any() costs a generator per request)
            if name == b"accept" and b"text/html" in value:
                return True
        return False

    def prepare(self, scope: Mapping[str, Any], send: Send, version: int) -> tuple[dict[str, Any], Send]:
        """The scope without ``Accept-Encoding`` (an uncompressed answer can take the script) nor
        the path-send extension (the body must come as messages), and a ``send`` that injects."""
        headers = [(name, value) for name, value in scope.get("headers", ()) if name != b"accept-encoding"]
        extensions = {key: value for key, value in (scope.get("extensions") or {}).items() if "pathsend" not in key}
        tag = self.tag(version, scope.get("root_path") or "")
        return {**scope, "headers": headers, "extensions": extensions}, _Injecting(send, tag)


class _MetaPolicyWatch:
    """Looks through an HTML body as it passes for a ``<meta http-equiv="Content-Security-Policy">``:
    a page that sets its policy there is left as it is (the policy is only known once it is read)."""

    _NEEDLE = b"content-security-policy"

    def __init__(self) -> None:
        self._tail = b""
        self.found = False

    def feed(self, chunk: bytes) -> None:
        window = (self._tail + chunk).lower()
        self.found = self.found or self._NEEDLE in window
        self._tail = window[-len(self._NEEDLE) :]


class _Injecting:
    """Appends the script to a whole HTML page: its ``Content-Length`` goes (the server then
    frames the longer body itself), and a ``<meta>`` policy met on the way calls it off."""

    def __init__(self, send: Send, tag: bytes) -> None:
        self._send = send
        self._tag = tag
        self._active = False
        self._meta = _MetaPolicyWatch()

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            headers = list(message.get("headers", ()))
            if injects_status(message["status"]) and injectable(headers):
                self._active = True
                message = {**message, "headers": [(k, v) for k, v in headers if k.lower() != b"content-length"]}
        elif kind == "http.response.body" and self._active:
            body = bytes(message.get("body", b""))
            self._meta.feed(body)
            if not message.get("more_body", False):
                self._active = False
                if not self._meta.found:
                    message = {**message, "body": body + self._tag}
        await self._send(message)


def injects_status(status: int) -> bool:
    """A whole page: 200, or an error page (4xx, 5xx). Never a part of one (206), a redirect, or
    an answer without a body."""
    return status == 200 or status >= 400


def injectable(headers: list[tuple[bytes, bytes]]) -> bool:
    """HTML, not compressed, and allowed by every Content-Security-Policy it carries."""
    fields = {name.lower(): value.decode("latin-1") for name, value in headers}
    if not fields.get(b"content-type", "").lower().startswith("text/html"):
        return False
    if fields.get(b"content-encoding", "identity").lower() != "identity":
        return False
    policies = [value.decode("latin-1") for name, value in headers if name.lower() == b"content-security-policy"]
    return all(csp_allows_injection(policy) for policy in policies)


def csp_allows_injection(policy: str) -> bool:
    """Whether a Content-Security-Policy leaves room for our script: scripts from the page's own
    origin and inline ones ('unsafe-inline', which a nonce, a hash or 'strict-dynamic' switch
    off), and an event stream to the page's origin. A page whose policy is stricter was written
    to keep scripts out: it is left as it is."""
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        tokens = part.split()
        if tokens:
            directives.setdefault(tokens[0].lower(), [token.lower() for token in tokens[1:]])

    def sources(*names: str) -> list[str] | None:
        return next((directives[name] for name in (*names, "default-src") if name in directives), None)

    def from_self(found: list[str] | None) -> bool:
        return found is None or "'self'" in found or "*" in found

    scripts = sources("script-src-elem", "script-src")
    inline = scripts is None or (
        "'unsafe-inline'" in scripts
        and "'strict-dynamic'" not in scripts
        and not any(source.startswith(("'nonce-", "'sha256-", "'sha384-", "'sha512-")) for source in scripts)
    )
    return from_self(scripts) and inline and from_self(sources("connect-src"))


def state_of(version: int, history: History, *, full: bool) -> dict[str, Any]:
    """What the event stream says: the serving version, and the failing reload if there is one
    (its details only for a client with the credential)."""
    error = history.last_error
    failing: dict[str, Any] | None = None
    if error is not None and not history.resolved:
        failing = error.as_dict() if full else {"type": error.type}
    return {"version": version, "failing": failing}


EVENT_STREAM_HEADERS = [
    ("content-type", "text/event-stream; charset=utf-8"),
    ("cache-control", "no-store"),
    ("x-accel-buffering", "no"),  # no proxy buffering
]
_RETRY = b"retry: 250\n\n"  # how soon the browser reconnects once a stream ends


class _Changes:
    """The state, as an event, each time it differs from the last one sent."""

    def __init__(self, state: Callable[[], dict[str, Any]]) -> None:
        self._state = state
        self._last: dict[str, Any] | None = None
        self.deadline = time.monotonic() + STREAM_SECONDS

    def next_event(self) -> bytes | None:
        current = self._state()
        if current == self._last:
            return None
        self._last = current
        return f"event: state\ndata: {json.dumps(current)}\n\n".encode()


async def stream_events(send: Send, state: Callable[[], dict[str, Any]]) -> None:
    """One short-lived event stream (ASGI): ``state`` now and whenever it changes."""
    headers = [(name.encode(), value.encode()) for name, value in EVENT_STREAM_HEADERS]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": _RETRY, "more_body": True})
    changes = _Changes(state)
    while time.monotonic() < changes.deadline:
        event = changes.next_event()
        if event is not None:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await anyio.sleep(_POLL_SECONDS)
    await send({"type": "http.response.body", "body": b""})


def event_chunks(state: Callable[[], dict[str, Any]]) -> Iterator[bytes]:
    """The same stream for a WSGI server: it holds one of the server's threads while it lasts."""
    yield _RETRY
    changes = _Changes(state)
    while time.monotonic() < changes.deadline:
        event = changes.next_event()
        if event is not None:
            yield event
        time.sleep(_POLL_SECONDS)


class WsgiInjection:
    """``start_response`` and the response iterable of one WSGI navigation, appending the script
    to an HTML answer (and keeping ``Content-Length`` right)."""

    def __init__(self, start_response: Callable[..., Any], tag: bytes) -> None:
        self._start_response = start_response
        self._tag = tag
        self._active = False
        self.meta = _MetaPolicyWatch()

    def start_response(self, status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
        raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        if injects_status(int(status.split(" ", 1)[0])) and injectable(raw):
            self._active = True
            headers = [(name, value) for name, value in headers if name.lower() != "content-length"]
        return self._start_response(status, headers, *exc_info)

    def body(self, result: Iterable[bytes]) -> _InjectedBody:
        return _InjectedBody(result, self)

    @property
    def active(self) -> bool:
        return self._active

    def tail(self) -> bytes:
        return self._tag if self._active and not self.meta.found else b""


class _InjectedBody:
    def __init__(self, result: Iterable[bytes], injection: WsgiInjection) -> None:
        self._result = result
        self._injection = injection

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._result:
            if self._injection.active:
                self._injection.meta.feed(chunk)
            yield chunk
        tail = self._injection.tail()
        if tail:
            yield tail

    def close(self) -> None:
        close = getattr(self._result, "close", None)
        if close is not None:
            close()


SCRIPT_HEADERS = [
    ("content-type", "text/javascript; charset=utf-8"),
    ("content-length", str(len(SCRIPT.encode()))),
    ("cache-control", "no-store"),
]


def script_response_headers() -> list[tuple[bytes, bytes]]:
    return [(name.encode(), value.encode()) for name, value in SCRIPT_HEADERS]

"""WSGI middleware: the same pipeline as the ASGI side, with request threads instead of an event loop.

A request counts as in flight until the server calls ``close()`` on its response iterable, so a
streamed response finishes on the version that started it; it counts as computing only while the
app is called (not while it reads a slow upload, nor while the server streams its answer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .._admin import REASONS, AdminRequest, AdminResponse, live
from .._pipeline import AppVersion, NoLifespan, Visit
from .._types import Environ, StartResponse, WSGIApp
from .base import ARGUMENTS, Wrapping
from .unavailable import unavailable_wsgi


class WSGIReloadMiddleware(Wrapping[WSGIApp]):
    # The docstring lists every option from its one declaration (``_config``).
    __doc__ = f"""Serve a WSGI app (Flask, Django, Falcon, ...) and swap in a freshly imported version
    whenever its source changes. The options are ``ReloadMiddleware``'s; lifespan ones
    (``startup_timeout``) and ``warmup`` do not apply.

{ARGUMENTS}
    """

    def _runtime(self) -> NoLifespan:
        return NoLifespan()

    @staticmethod
    def _unavailable(error: str) -> WSGIApp:
        return unavailable_wsgi(error)

    @staticmethod
    def _version_header(name: str, number: int) -> tuple[str, str]:
        return (name, str(number))

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if not self.enabled:
            return self._bare(environ, start_response)
        if not self._worker.started:  # in the serving process: a server may fork after importing us
            self._pipeline.start()
        path = environ.get("PATH_INFO", "")
        if path in self._own_paths:
            return self._serve_own(environ, start_response, path)
        gate = self._queue.gate
        if gate is not None:
            gate.hold(self._wait_limit)
        if self._history.failing is not None:
            answered = self._while_failing(environ, start_response)
            if isinstance(answered, list):
                return answered  # the error page
            start_response = answered
        return self._call(self._versions.current, environ, start_response)

    def _call(self, version: AppVersion, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Call ``version``'s app, counting the request on it until the server closes the answer."""
        if version.header is not None:
            start_response = _with_header(start_response, version.header)
        injection = self._injection(environ, start_response, version.number)
        if injection is not None:
            start_response = injection.start_response
        visit = Visit(version)
        if "wsgi.input" in environ:
            environ["wsgi.input"] = _PacedInput(environ["wsgi.input"], visit)
        try:
            result = version.app(environ, start_response)
        except BaseException:
            visit.end()
            raise
        visit.streaming = True  # what is left is streaming the answer, at the client's pace
        return _ClosingIterable(result if injection is None else injection.body(result), visit)

    def _while_failing(self, environ: Environ, start_response: StartResponse) -> list[bytes] | StartResponse:
        """While the latest reload is failing: a browser's answer (the error page), or the
        ``start_response`` that marks an API answer with a header."""
        failing = self._history.failing
        if failing is None:  # fixed meanwhile
            return start_response
        answer = self._admin.while_failing(AdminRequest.from_environ(environ), failing)
        if isinstance(answer, AdminResponse):
            return _respond(start_response, answer)
        return _with_header(start_response, answer)

    def _injection(self, environ: Environ, start_response: StartResponse, version: int) -> live.WsgiInjection | None:
        """Live refresh's script for an HTML page, when it is on and the request wants a page."""
        if self._live is None or not self._live.wants_environ(environ):
            return None
        environ.pop("HTTP_ACCEPT_ENCODING", None)  # an uncompressed answer can take the script
        return live.WsgiInjection(start_response, self._live.tag(version, environ.get("SCRIPT_NAME", "")))

    def _serve_own(self, environ: Environ, start_response: StartResponse, path: str) -> Iterable[bytes]:
        """The admin endpoint, or live refresh's script and event stream (under the admin
        endpoint's access rules)."""
        request = AdminRequest.from_environ(environ)
        if path == self._admin_path:
            return _respond(start_response, self._admin.handle(request))
        decision = self._admin.read_access(request)
        if isinstance(decision, AdminResponse):
            return _respond(start_response, decision)
        if self._live is not None and path == self._live.script_path:
            start_response("200 OK", list(live.SCRIPT_HEADERS))
            return [live.SCRIPT.encode()]
        start_response("200 OK", list(live.EVENT_STREAM_HEADERS))
        return live.event_chunks(lambda: self._live_state(full=decision))

    def close(self) -> None:
        """Stop the watcher and the pipeline's thread (for servers that call it; both are daemons)."""
        if self.enabled:
            self._pipeline.close()


class _PacedInput:
    """``wsgi.input`` whose reads do not count as computing: a stalled upload holds no swap back."""

    def __init__(self, stream: Any, visit: Visit) -> None:
        self._stream = stream
        self._visit = visit

    def _paced(self, method: Callable[..., Any], *args: Any) -> Any:
        visit = self._visit
        visit.paced = True
        try:
            return method(*args)
        finally:
            visit.paced = False

    def read(self, *args: Any) -> bytes:
        return self._paced(self._stream.read, *args)  # type: ignore[no-any-return]

    def readline(self, *args: Any) -> bytes:
        return self._paced(self._stream.readline, *args)  # type: ignore[no-any-return]

    def readlines(self, *args: Any) -> list[bytes]:
        return self._paced(self._stream.readlines, *args)  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _ClosingIterable:
    """The app's response, and the end of its request when the server closes it (PEP 3333)."""

    def __init__(self, result: Iterable[bytes], visit: Visit) -> None:
        self._result = result
        self._visit = visit

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._result)

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._visit.end()


def _respond(start_response: StartResponse, response: AdminResponse) -> list[bytes]:
    start_response(f"{response.status} {REASONS.get(response.status, '')}".strip(), response.all_headers())
    return [response.body]


def _with_header(start_response: StartResponse, header: tuple[str, str]) -> StartResponse:
    def start_with_header(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
        return start_response(status, [*headers, header], *exc_info)

    return start_with_header

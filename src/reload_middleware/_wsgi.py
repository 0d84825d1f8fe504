"""WSGI middleware: the same pipeline as the ASGI side, with request threads instead of an event loop.

A request counts as in flight until the server calls ``close()`` on its response iterable, so a
streamed response finishes on the version that started it; it counts as computing only while the
app is called (not while it reads a slow upload, nor while the server streams its answer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from ._admin import REASONS, AdminRequest, AdminResponse
from ._config import Options, Unpack
from ._live import EVENT_STREAM_HEADERS, SCRIPT, SCRIPT_HEADERS, WsgiInjection, event_chunks
from ._types import Environ, StartResponse, WSGIApp
from ._versions import AppVersion
from ._wrapping import Wrapping


class WSGIReloadMiddleware(Wrapping[WSGIApp]):
    """Serve a WSGI app (Flask, Django, Falcon, ...) and swap in a freshly imported version whenever
    its source changes. Takes the options of ``ReloadMiddleware``; lifespan ones do not apply."""

    def __init__(
        self,
        app: str | WSGIApp,
        *,
        enabled: bool | None = None,
        factory: bool = False,
        environ: Mapping[str, str] | None = None,
        **options: Unpack[Options],
    ) -> None:
        self._wrap(app, enabled, factory, environ, options)

    def _runtime(self) -> _NoLifespan:
        return _NoLifespan()

    @staticmethod
    def _version_header(name: str, number: int) -> tuple[str, str]:
        return (name, str(number))

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if not self.enabled:
            return self._bare(environ, start_response)
        pipeline = self._pipeline
        if not pipeline.started:  # in the serving process: a server may fork after importing us
            pipeline.start()
        path = environ.get("PATH_INFO")
        if path == self._admin_path:
            return _respond(start_response, self._admin.handle(AdminRequest.from_environ(environ)))
        live = self._live
        if live is not None and path in (live.script_path, live.events_path):
            return self._serve_live(environ, start_response, path == live.script_path)
        gate = pipeline.gate
        if gate is not None:
            gate.hold(self._wait_limit)
        if pipeline.failing is not None:
            answer = self._admin.while_failing(AdminRequest.from_environ(environ), pipeline.failing)
            if isinstance(answer, AdminResponse):
                return _respond(start_response, answer)
            start_response = _with_header(start_response, answer)
        version = pipeline.versions.current
        if version.header is not None:
            start_response = _with_header(start_response, version.header)
        injection = None
        if live is not None and live.wants_environ(environ):
            environ.pop("HTTP_ACCEPT_ENCODING", None)  # an uncompressed answer can take the script
            injection = WsgiInjection(start_response, live.tag(version.number, environ.get("SCRIPT_NAME", "")))
            start_response = injection.start_response
        with version.lock:
            version.in_flight += 1
            version.computing += 1
        if "wsgi.input" in environ:
            environ["wsgi.input"] = _PacedInput(environ["wsgi.input"], version)
        try:
            result = version.app(environ, start_response)
        except BaseException:
            _leave(version, computing=True)
            raise
        with version.lock:
            version.computing -= 1  # what is left is streaming the answer, at the client's pace
        return _ClosingIterable(result if injection is None else injection.body(result), version)

    def _serve_live(self, environ: Environ, start_response: StartResponse, script: bool) -> Iterable[bytes]:
        """Live refresh's script, or its event stream (under the admin endpoint's access rules)."""
        decision = self._admin.read_access(AdminRequest.from_environ(environ))
        if isinstance(decision, AdminResponse):
            return _respond(start_response, decision)
        if script:
            start_response("200 OK", list(SCRIPT_HEADERS))
            return [SCRIPT.encode()]
        start_response("200 OK", list(EVENT_STREAM_HEADERS))
        return event_chunks(lambda: self._live_state(full=decision))

    def close(self) -> None:
        """Stop the watcher and the pipeline's thread (for servers that call it; both are daemons)."""
        if self.enabled:
            self._pipeline.close()


class _NoLifespan:
    """WSGI has no lifespan and no lazy route set-up worth a warm-up."""

    def start(self, version: AppVersion) -> None:
        pass

    def warm_up(self, version: AppVersion, timeout: float) -> None:
        pass

    def stop(self, version: AppVersion) -> None:
        pass

    @staticmethod
    def adapt(app: Any) -> Any:
        return app


def _leave(version: AppVersion, *, computing: bool) -> None:
    with version.lock:
        version.in_flight -= 1
        if computing:
            version.computing -= 1


class _PacedInput:
    """``wsgi.input`` whose reads do not count as computing: a stalled upload holds no swap back."""

    def __init__(self, stream: Any, version: AppVersion) -> None:
        self._stream = stream
        self._version = version

    def _paced(self, method: Callable[..., Any], *args: Any) -> Any:
        version = self._version
        with version.lock:
            version.computing -= 1
        try:
            return method(*args)
        finally:
            with version.lock:
                version.computing += 1

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

    def __init__(self, result: Iterable[bytes], version: AppVersion) -> None:
        self._result = result
        self._version: AppVersion | None = version

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._result)

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            version, self._version = self._version, None
            if version is not None:
                _leave(version, computing=False)


def _respond(start_response: StartResponse, response: AdminResponse) -> list[bytes]:
    start_response(f"{response.status} {REASONS.get(response.status, '')}".strip(), response.all_headers())
    return [response.body]


def _with_header(start_response: StartResponse, header: tuple[str, str]) -> StartResponse:
    def start_with_header(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
        return start_response(status, [*headers, header], *exc_info)

    return start_with_header

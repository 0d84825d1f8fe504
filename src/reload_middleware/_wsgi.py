"""WSGI middleware: the same engine as the ASGI side, with threads instead of an event loop.

One reload at a time under a lock; new requests wait at that lock while a build runs and while the
old version drains; a request counts as in flight until the server calls ``close()`` on its
response iterable, so a streamed response finishes on the version that started it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import ModuleType
from typing import Any

from ._admin import Admin, AdminRequest, AdminResponse
from ._config import Options, Unpack
from ._errors import ReloadError
from ._page import error_page, error_summary
from ._reloader import elapsed_ms, prepare
from ._retire import retire_modules
from ._watch import Watcher

logger = logging.getLogger("reload_middleware")

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class _Version:
    """A WSGI app version and its requests in flight, guarded by the middleware's condition."""

    def __init__(self, number: int, app: WSGIApp) -> None:
        self.number = number
        self.app: WSGIApp | None = app
        self.in_flight = 0
        self.replaced: dict[str, ModuleType] = {}
        self.state = "serving"


class WSGIReloadMiddleware:
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
        self.app: WSGIApp
        self.app, reloader = prepare(app, enabled=enabled, factory=factory, environ=environ, options=options)
        self.enabled = reloader is not None
        if reloader is None:
            return
        self._reloader = reloader
        self.config = reloader.config
        self._admin = Admin(self.config.token, self.config.admin_path or "")
        self._header_name = self.config.version_header
        self._current = _Version(1, self.app)
        self._live = [self._current]
        self._reload_lock = threading.Lock()
        self._condition = threading.Condition()
        self._watcher: Watcher | None = None
        # Started by the first request in the serving process: a server that imports the app and
        # then forks its workers (gunicorn --preload) would leave a thread behind in the parent only.
        os.register_at_fork(after_in_child=self._forget_watcher)

    def _forget_watcher(self) -> None:
        self._watcher = None

    def _start_watching(self) -> Watcher:
        with self._reload_lock:
            if self._watcher is None:
                self._watcher = self._reloader.watcher(self._on_change, self._on_trigger)
                self._watcher.start()
            return self._watcher

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if not self.enabled:
            return self.app(environ, start_response)
        if self._watcher is None:
            self._start_watching()
        if environ.get("PATH_INFO") == self.config.admin_path:
            return self._serve_admin(environ, start_response)
        if self._reloader.detector.dirty or self._reload_lock.locked():
            self._reload_settled()
        failing = self._reloader.failing
        if failing is not None:
            if "text/html" in environ.get("HTTP_ACCEPT", ""):
                start_response("500 Internal Server Error", [("content-type", "text/html; charset=utf-8")])
                return [error_page(failing, self.config.admin_path or "").encode()]
            start_response = _with_header(start_response, ("x-reload-error", error_summary(failing)))
        with self._condition:
            version = self._current
            version.in_flight += 1
            app = version.app
        if app is None:  # cannot happen: a version keeps its app until it retires, after its requests
            raise ReloadError(f"version {version.number} has no app")
        respond = start_response
        if self._header_name is not None:
            respond = _with_header(start_response, (self._header_name, str(version.number)))
        try:
            result = app(environ, respond)
        except BaseException:
            self._leave(version)
            raise
        return _ClosingIterable(result, lambda: self._leave(version))

    def _leave(self, version: _Version) -> None:
        with self._condition:
            version.in_flight -= 1
            if version.in_flight == 0:
                self._condition.notify_all()
                if version.state == "draining":
                    self._retire(version)

    # -- reloading -------------------------------------------------------------------------------

    def _reload_settled(self) -> None:
        # Waiting on the lock is the gate: a request that arrives during a build or a drain is
        # served once the reload is over, by the new version (or the old one if it failed).
        with self._reload_lock:
            pass
        if self._reloader.detector.dirty:
            self.reload()

    def _on_change(self) -> None:  # in the watcher thread: reload before anyone asks
        self.reload()

    def _on_trigger(self) -> None:
        signal = self._reloader.trigger.take()
        if signal is not None:
            self.reload(force=signal.force, sweep=True)

    def reload(self, *, force: bool = False, sweep: bool = False) -> dict[str, Any]:
        """Check for changes and reload now; returns the admin endpoint's answer."""
        with self._reload_lock:
            started = time.perf_counter()
            reloader = self._reloader
            try:
                plan = reloader.plan(force=force, sweep=sweep)
                if plan is None:
                    return self._outcome(True, [], started, None)
                group = reloader.build(plan)
            except Exception as exc:
                return self._outcome(False, [], started, reloader.fail(exc).as_dict())
            record = reloader.commit(plan, group, self._current.number + 1, elapsed_ms(started))
            new = _Version(self._current.number + 1, group.app)
            with self._condition:
                old = self._current
                old.replaced = group.old_modules
                if not self.config.overlap:  # drain first
                    drained = self._condition.wait_for(lambda: old.in_flight == 0, self.config.drain_timeout)
                    if not drained:
                        logger.warning(
                            "version %d still had requests after %g s; swapping anyway",
                            old.number,
                            self.config.drain_timeout,
                        )
                self._current = new
                self._live.append(new)
                self.app = group.app
                old.state = "draining"
                if old.in_flight == 0:
                    self._retire(old)
            return self._outcome(True, record.modules, started, None)

    def _retire(self, version: _Version) -> None:
        """Called with the condition held, once the version's last request has closed."""
        version.state = "retired"
        self._live.remove(version)
        replaced, version.replaced, version.app = version.replaced, {}, None
        retire_modules(version.number, replaced, self._reloader.leaks)
        logger.info("version %d retired", version.number)

    def _outcome(self, ok: bool, modules: list[str], started: float, error: Any) -> dict[str, Any]:
        return self._reloader.outcome(ok, self._current.number, modules, started, error)

    # -- admin -----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        listening = self._watcher is not None and self._watcher.running
        with self._condition:
            versions = [{"number": v.number, "state": v.state, "in_flight": v.in_flight} for v in self._live]
        return self._reloader.status(self._current.number, versions, listening)

    def _serve_admin(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        headers = {
            key[5:].replace("_", "-").lower(): str(value) for key, value in environ.items() if key.startswith("HTTP_")
        }
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").lower()] = str(environ[key])
        request = AdminRequest(
            method=str(environ.get("REQUEST_METHOD", "GET")),
            query_string=str(environ.get("QUERY_STRING", "")),
            headers=headers,
            client_host=environ.get("REMOTE_ADDR"),
            has_body=headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers,
        )
        response = self._admin.refusal(request)
        if response is None:
            force = self._admin.parse_force(request)
            if isinstance(force, AdminResponse):
                response = force
            elif request.method == "GET":
                response = self._admin.render_status(request, self.status())
            else:
                outcome = self.reload(force=force, sweep=True)
                self._reloader.tell_other_workers(force)
                response = self._admin.render_reload(request, outcome)
        extra = [(self._header_name, str(self._current.number))] if self._header_name else []
        start_response(f"{response.status} {_REASONS.get(response.status, '')}".strip(), response.all_headers() + extra)
        return [response.body]

    def close(self) -> None:
        """Stop the watcher and leak-check threads (for servers that call it; both are daemon threads)."""
        if self.enabled:
            self._reloader.leaks.close()
            if self._watcher is not None:
                self._watcher.stop()


class _ClosingIterable:
    """The app's response, plus a callback when the server closes it (PEP 3333)."""

    def __init__(self, result: Iterable[bytes], on_close: Callable[[], None]) -> None:
        self._result = result
        self._on_close: Callable[[], None] | None = on_close

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._result)

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close()


_REASONS = {200: "OK", 303: "See Other", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
_REASONS |= {405: "Method Not Allowed", 431: "Request Header Fields Too Large", 500: "Internal Server Error"}


def _with_header(start_response: StartResponse, header: tuple[str, str]) -> StartResponse:
    def start_with_header(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
        return start_response(status, [*headers, header], *exc_info)

    return start_with_header

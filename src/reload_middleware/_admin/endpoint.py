"""The admin endpoint, independent of ASGI or WSGI: status and reload answers, and the error page.

The middlewares build an ``AdminRequest`` from the ASGI scope or the WSGI environ and hand it to
``AdminEndpoint.handle()`` (ASGI from a worker thread): the one place that decides (``access``),
reloads and renders. The error page shown while a reload is failing is rendered here too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .._errors import ErrorReport
from .._local import ServerCredential
from .._pipeline import Pipeline
from .access import AccessRules, AdminRequest, AdminResponse, error_response
from .live import LiveRefresh
from .pages import ERROR_PAGE_QUERY, error_page, error_summary, status_page

logger = logging.getLogger(__name__)


class AdminEndpoint:
    """Decides who may use the endpoint, runs what it asks for, and renders the answers."""

    def __init__(self, pipeline: Pipeline, live: LiveRefresh | None = None) -> None:
        config = pipeline.config
        self._pipeline = pipeline
        self._path = config.admin_path or ""
        self._credential = None if config.token else ServerCredential()
        self._access = AccessRules(config.token, self._path, self._credential)
        self._version_header = config.version_header
        self._live = live  # live refresh, when it is on: the error page reloads itself once fixed
        self._base_url = (config.url or "").rstrip("/")

    def announce(self) -> None:
        """Log the status-page link that carries the local credential (in the fragment, which no
        browser sends to a server: it never reaches an access log or a referrer)."""
        if self._credential is not None and self._path:
            base = self._base_url or "http://<this server>"
            logger.info("Reload status page: %s%s#token=%s", base, self._path, self._credential.started_with)

    def handle(self, request: AdminRequest) -> AdminResponse:
        """Answer one request; a ``POST`` reloads and waits for the outcome (call it off the event loop)."""
        challenged = self._access.challenge(request)
        decision = challenged if challenged is not None else self._access.decide(request)
        if isinstance(decision, AdminResponse):
            response = decision
        else:
            force = self._access.parse_force(request)
            if isinstance(force, AdminResponse):
                response = force
            elif request.method == "GET" and request.query_string == ERROR_PAGE_QUERY:
                response = self._render_error_page(full=decision)
            elif request.method == "GET":
                response = self._render_status(request, self._pipeline.status(), full=decision)
            else:
                outcome = self._pipeline.request(force=force, sweep=True).wait()
                self._pipeline.tell_other_workers(force)
                response = self._render_reload(request, outcome.as_dict() if outcome else {"ok": False})
        if self._version_header is not None:
            number = str(self._pipeline.versions.current.number)
            response = AdminResponse(
                response.status,
                response.body,
                response.content_type,
                [*response.headers, (self._version_header, number)],
            )
        return response

    def _render_status(self, request: AdminRequest, status: Mapping[str, Any], *, full: bool = True) -> AdminResponse:
        shown = status if full else redacted(status)
        if request.wants_html():
            return AdminResponse(200, status_page(shown, self._path, full=full).encode(), "text/html")
        return AdminResponse.json(200, shown)

    def _render_error_page(self, *, full: bool) -> AdminResponse:
        """The error page of the failing reload (what an app page shows meanwhile), asked for by
        such a page shown without details; the status page once nothing fails."""
        report = self._pipeline.history.failing
        if report is None:
            return AdminResponse(200, status_page(self._pipeline.status(), self._path, full=full).encode(), "text/html")
        return AdminResponse(500, error_page(report.as_dict(), self._path, full=full).encode(), "text/html")

    def _render_reload(self, request: AdminRequest, outcome: Mapping[str, Any]) -> AdminResponse:
        if request.wants_html():  # a form on the status page: show the page again, with the outcome
            return AdminResponse(303, b"", "text/plain", [("location", self._path)])
        return AdminResponse.json(200 if outcome["ok"] else 500, outcome)

    def read_access(self, request: AdminRequest) -> AdminResponse | bool:
        """For the live-refresh script and events: a refusal, or whether error details may be shown."""
        if request.method != "GET":
            return error_response(405, f"method {request.method} is not allowed", [("allow", "GET")])
        if request.query_string and not request.query_string.startswith("v="):
            return error_response(400, "unexpected query parameters")
        return self._access.decide(request)

    def while_failing(self, request: AdminRequest, report: ErrorReport) -> AdminResponse | tuple[str, str]:
        """What a request gets while the latest reload is failing: a browser the error page, an API
        client a header beside the old version's answer. The file, the source lines, the message
        and the traceback only with the credential (a secret may stand on the failing line)."""
        full = self._access.carries_credential(request)
        if request.wants_html():
            page = error_page(report.as_dict(), self._path, full=full).encode()
            if self._live is not None:  # the page reloads itself once the error is fixed
                page += self._live.tag(self._pipeline.versions.current.number)
            return AdminResponse(500, page, "text/html")
        summary = report.as_dict() if full else {"type": report.type, "message": "details on the admin endpoint"}
        return ("x-reload-error", error_summary(summary))


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

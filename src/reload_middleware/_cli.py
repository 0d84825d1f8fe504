"""The command line: run any ASGI app under uvicorn with reloading on, or trigger a reload.

    reload-middleware myservice.main:app [--host ...] [--port ...] [--watch DIR] ...
    reload-middleware trigger http://127.0.0.1:8000 [--token T] [--force]

Only this module prints to the terminal or exits.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import urllib.parse
from collections.abc import Sequence
from typing import Any

from ._admin import is_loopback_host
from ._config import ENV_PREFIX
from ._credential import local_credential
from ._errors import ImportStringError, ReloadError

APP_VARIABLE = f"{ENV_PREFIX}_APP"
FACTORY_VARIABLE = f"{ENV_PREFIX}_APP_FACTORY"
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reload-middleware",
        description="Run an ASGI app under uvicorn, reloading edited modules in-process (no restart). "
        "To ask a running server to reload: reload-middleware trigger URL (see 'trigger --help').",
    )
    parser.add_argument("app", help='the app as "module:attribute", e.g. myservice.main:app')
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default: 8000)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    parser.add_argument("--factory", action="store_true", help="APP is a callable that returns the app")
    parser.add_argument("--log-level", choices=_LOG_LEVELS, default="info", help="uvicorn's log level")
    parser.add_argument(
        "--watch",
        action="append",
        metavar="DIR",
        help="directory whose modules may be reloaded; repeat for more (default: the app's package)",
    )
    parser.add_argument("--exclude", action="append", metavar="GLOB", help="files never reloaded; repeatable")
    parser.add_argument("--token", help="bearer token the admin endpoint requires (or RELOAD_MIDDLEWARE_TOKEN)")
    parser.add_argument("--drain-timeout", type=float, metavar="SECONDS", help="how long a swap waits for requests")
    parser.add_argument("--manual", action="store_true", help="do not watch files: reload only on POST /__reload")
    parser.add_argument(
        "--no-error-page",
        action="store_true",
        help="after a failed reload keep serving the old version to browsers too, without an error page",
    )
    return parser


def trigger_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reload-middleware trigger",
        description="Ask a running server to reload now (POST to its admin endpoint). "
        "Exits 0 when the reload succeeded or nothing changed, 1 when it failed, 2 when it was refused.",
    )
    parser.add_argument("url", help="the server, e.g. http://127.0.0.1:8000")
    parser.add_argument(
        "--token",
        default=os.environ.get(f"{ENV_PREFIX}_TOKEN"),
        help="bearer token (default: RELOAD_MIDDLEWARE_TOKEN; for a server on this machine without one, "
        "this user's local credential is found by itself)",
    )
    parser.add_argument("--force", action="store_true", help="reload the whole app, changed or not")
    parser.add_argument("--admin-path", default="/__reload", help="the admin endpoint (default: /__reload)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the answer")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["trigger"]:
        return trigger(trigger_parser().parse_args(arguments[1:]))
    return serve(serve_parser().parse_args(arguments))


def serve(options: argparse.Namespace) -> int:
    import uvicorn

    sys.path.insert(0, os.getcwd())  # as uvicorn does: the app is found from the working directory
    environment = {
        ENV_PREFIX: "1",
        APP_VARIABLE: options.app,
        FACTORY_VARIABLE: "1" if options.factory else "0",
        f"{ENV_PREFIX}_ERROR_PAGE": "0" if options.no_error_page else "1",
        # For the status-page link the server logs (it carries the local credential).
        f"{ENV_PREFIX}_URL": f"http://{_url_host(options.host)}:{options.port}",
    }
    if options.watch:
        environment[f"{ENV_PREFIX}_WATCH_DIRS"] = os.pathsep.join(os.path.abspath(d) for d in options.watch)
    if options.exclude:
        environment[f"{ENV_PREFIX}_EXCLUDE"] = ",".join(options.exclude)
    if options.token:
        environment[f"{ENV_PREFIX}_TOKEN"] = options.token
    if options.drain_timeout is not None:
        environment[f"{ENV_PREFIX}_DRAIN_TIMEOUT"] = str(options.drain_timeout)
    if options.manual:
        environment[f"{ENV_PREFIX}_WATCH"] = "0"
    os.environ.update(environment)  # worker processes inherit the options this way
    try:
        create_app()  # fail here, with a clear message, rather than inside uvicorn
    except ReloadError as exc:
        _report_start_failure(exc)
        return 1
    uvicorn.run(
        f"{__name__}:create_app",
        factory=True,
        host=options.host,
        port=options.port,
        workers=options.workers if options.workers > 1 else None,
        log_level=options.log_level,
    )
    return 0


_created: Any = None


def create_app() -> Any:
    """The factory uvicorn calls in each worker: the user's app behind the middleware."""
    global _created
    if _created is None:
        from ._asgi import ReloadMiddleware

        _created = ReloadMiddleware(os.environ[APP_VARIABLE], factory=os.environ.get(FACTORY_VARIABLE) == "1")
    return _created


def _report_start_failure(exc: ReloadError) -> None:
    print(f"reload-middleware: {exc}", file=sys.stderr)
    cause = exc.__cause__
    if isinstance(exc, ImportStringError) and cause is not None:
        print("".join(traceback.format_exception(type(cause), cause, cause.__traceback__)), file=sys.stderr)


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def trigger(options: argparse.Namespace) -> int:
    import httpx

    parts = urllib.parse.urlsplit(options.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        print(
            f"reload-middleware trigger: {options.url!r} is not a server URL such as http://127.0.0.1:8000",
            file=sys.stderr,
        )
        return 2
    token = options.token
    if not token and is_loopback_host(parts.hostname):
        # The same machine: this user's local credential (never sent anywhere else).
        token = local_credential(create=False)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    url = options.url.rstrip("/") + options.admin_path
    try:
        response = httpx.post(
            url, params={"force": "1"} if options.force else None, headers=headers, timeout=options.timeout
        )
    except httpx.HTTPError as exc:
        print(f"reload-middleware trigger: could not reach {url}: {exc}", file=sys.stderr)
        return 2
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code in (401, 403, 405) or "ok" not in answer:
        print(
            f"reload-middleware trigger: refused ({response.status_code}): {answer.get('error', response.text)}",
            file=sys.stderr,
        )
        return 2
    if not answer["ok"]:
        error = answer.get("error") or {}
        if error.get("type") == "StaleCode":  # it swapped, but old code still answers
            print(f"reloaded to version {answer['version']}, but it is stale: {error.get('message')}")
            return 1
        where = f" at {error.get('file')}:{error.get('line')}" if error.get("file") else ""
        print(
            f"reload failed, version {answer['version']} serves on: {error.get('type')}: {error.get('message')}{where}"
        )
        return 1
    if answer["reloaded"]:
        count, duration = len(answer["reloaded"]), answer["duration_ms"]
        print(f"reloaded {count} module(s) in {duration} ms, now version {answer['version']}")
    else:
        print(f"nothing changed, version {answer['version']} serves on")
    return 0

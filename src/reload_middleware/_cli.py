"""The command line: run any ASGI app under uvicorn with reloading on, or trigger a reload.

    reload-middleware myservice.main:app [uvicorn's options] [--watch DIR] [--token T] ...
    reload-middleware trigger http://127.0.0.1:8000 [--token T] [--force]

Only this module prints to the terminal or exits.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click

from . import __version__
from ._config import ENV_PREFIX, TEMPLATE_GLOBS, Config
from ._errors import ImportStringError, ReloadError, is_machinery
from ._rollout import BadTarget, Outcome, Plan, Result, replicas, roll_out

# uvicorn's exit code when the server cannot start (a wrong import string among others).
STARTUP_FAILURE = 3


class WSGIAppError(ReloadError):
    """The command line was given a WSGI app: it serves ASGI apps."""


APP_VARIABLE = f"{ENV_PREFIX}_APP"
FACTORY_VARIABLE = f"{ENV_PREFIX}_APP_FACTORY"


# uvicorn's options we replace: reloading is in-process, always on (``--reload`` is accepted and
# changes nothing), its directories and patterns are ours; we serve one ASGI 3 interface; the
# version is ours; the app and the factory flag are the user's, behind our own factory.
_REPLACED = {"reload", "reload_dirs", "reload_includes", "reload_excludes", "reload_delay", "interface", "version"}
_REPLACED |= {"app", "factory"}


def _print_version(context: click.Context, _: click.Parameter, value: bool) -> None:
    if value and not context.resilient_parsing:
        import uvicorn

        click.echo(
            f"reload-middleware {__version__} (uvicorn {uvicorn.__version__}, "
            f"{platform.python_implementation()} {platform.python_version()} on {platform.system()})"
        )
        context.exit()


def serve_command() -> click.Command:
    """uvicorn's command line (its options, names, defaults and ``UVICORN_*`` variables), plus ours."""
    from uvicorn.main import main as uvicorn_main

    ours: list[click.Parameter] = [
        click.Argument(["app"], envvar=APP_VARIABLE),
        click.Option(["--factory"], is_flag=True, help="Treat APP as an app factory, a () -> <app> callable."),
        click.Option(
            ["--reload"], is_flag=True, help="Accepted for uvicorn's sake: reloading is always on, in-process."
        ),
        click.Option(
            ["--watch", "--reload-dir", "watch"],
            multiple=True,
            type=click.Path(exists=True, file_okay=False),
            help="Directory whose modules may be reloaded; repeatable. [default: the project root, as uvicorn's]",
            envvar=f"{ENV_PREFIX}_WATCH_DIRS",
            show_envvar=True,
        ),
        click.Option(
            ["--include", "--reload-include", "include"],
            multiple=True,
            metavar="GLOB",
            help=f"Other files whose edits rebuild the app (.env, *.yaml); repeatable. Templates "
            f"({', '.join(TEMPLATE_GLOBS)}) always do.",
        ),
        click.Option(
            ["--exclude", "--reload-exclude", "exclude"],
            multiple=True,
            metavar="GLOB",
            help="Files never reloaded; repeatable.",
            envvar=f"{ENV_PREFIX}_EXCLUDE",
            show_envvar=True,
        ),
        click.Option(
            ["--token"],
            help="Bearer token the admin endpoint requires from other machines.",
            envvar=f"{ENV_PREFIX}_TOKEN",
            show_envvar=True,
        ),
        click.Option(
            ["--drain-timeout"],
            type=float,
            default=Config().drain_timeout,
            metavar="SECONDS",
            help="How long a swap waits for the requests the old version is computing.",
            envvar=f"{ENV_PREFIX}_DRAIN_TIMEOUT",
            show_envvar=True,
        ),
        click.Option(
            ["--build-timeout"],
            type=float,
            default=Config().build_timeout,
            metavar="SECONDS",
            help="How long importing a new version may take.",
            envvar=f"{ENV_PREFIX}_BUILD_TIMEOUT",
            show_envvar=True,
        ),
        click.Option(["--manual"], is_flag=True, help="Do not watch files: reload only on POST /__reload or trigger."),
        click.Option(
            ["--live-refresh/--no-live-refresh"],
            default=True,
            help="Pages reload themselves after each reload, and show the error while one is failing.",
            envvar=f"{ENV_PREFIX}_LIVE_REFRESH",
            show_envvar=True,
        ),
        click.Option(
            ["--no-error-page"],
            is_flag=True,
            help="After a failed reload keep serving the old version to browsers too, without an error page.",
        ),
        click.Option(
            ["--version"],
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_print_version,
            help="Show the version and exit.",
        ),
    ]
    reused = [parameter for parameter in uvicorn_main.params if parameter.name not in _REPLACED]
    return click.Command(
        "reload-middleware",
        params=ours[:1] + reused + ours[1:],
        callback=lambda **options: serve(uvicorn_main, options),
        help="Run an ASGI app under uvicorn, reloading edited modules in-process (no restart). "
        "APP is module:attribute, e.g. myservice.main:app. uvicorn's options work as with uvicorn. "
        "To ask a running server to reload: reload-middleware trigger URL (see trigger --help).",
        context_settings={"auto_envvar_prefix": "UVICORN", "show_default": True},
    )


def trigger_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reload-middleware trigger",
        description="Ask running servers to reload now (POST to their admin endpoint). Several replicas "
        "roll one batch at a time: each must reload (and pass --check) before the next batch starts; "
        "the first failure stops the roll-out, and the replicas not reached keep their version. "
        "Exits 0 when every reload succeeded or nothing changed, 1 when one failed, is stale or failed its "
        "check, 2 when a replica refused or could not be reached.",
    )
    parser.add_argument("urls", nargs="+", metavar="URL", help="a server, e.g. http://127.0.0.1:8000; several roll")
    parser.add_argument(
        "--all-addresses",
        action="store_true",
        help="reload every address each URL's host name resolves to (a headless service, a DNS round robin)",
    )
    parser.add_argument("--batch", type=int, default=1, help="replicas reloaded at once (default: 1)")
    parser.add_argument(
        "--check", metavar="PATH", help="after each reload, PATH must answer 2xx from the new version (e.g. /health)"
    )
    parser.add_argument(
        "--max-failures", type=int, default=0, help="failed replicas tolerated before the roll-out stops (default: 0)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--token",
        default=os.environ.get(f"{ENV_PREFIX}_TOKEN"),
        help="bearer token (default: RELOAD_MIDDLEWARE_TOKEN; for a server on this machine without one, "
        "this user's local credential is found by itself); never printed",
    )
    parser.add_argument("--force", action="store_true", help="reload the whole app, changed or not")
    parser.add_argument("--admin-path", default="/__reload", help="the admin endpoint (default: /__reload)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each answer")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["trigger"]:
        return trigger(trigger_parser().parse_args(arguments[1:]))
    try:
        serve_command().main(arguments, prog_name="reload-middleware", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def serve(uvicorn_main: click.Command, options: dict[str, Any]) -> None:
    """Set our options up for every worker process, check the app here (a wrong import string
    fails now, with uvicorn's exit code and the user's frames only), then run uvicorn's own
    command on our factory."""
    app, factory = options.pop("app"), options.pop("factory")
    watch, excludes, includes = options.pop("watch"), options.pop("exclude"), options.pop("include")
    options.pop("reload")
    environment = {
        ENV_PREFIX: "1",
        APP_VARIABLE: app,
        FACTORY_VARIABLE: "1" if factory else "0",
        f"{ENV_PREFIX}_ERROR_PAGE": "0" if options.pop("no_error_page") else "1",
        f"{ENV_PREFIX}_LIVE_REFRESH": "1" if options.pop("live_refresh") else "0",
        f"{ENV_PREFIX}_DRAIN_TIMEOUT": str(options.pop("drain_timeout")),
        f"{ENV_PREFIX}_BUILD_TIMEOUT": str(options.pop("build_timeout")),
        # For the status-page link the server logs (it carries the local credential).
        f"{ENV_PREFIX}_URL": f"http://{_url_host(options['host'])}:{options['port']}",
    }
    if watch:
        environment[f"{ENV_PREFIX}_WATCH_DIRS"] = os.pathsep.join(os.path.abspath(d) for d in watch)
    if excludes:
        environment[f"{ENV_PREFIX}_EXCLUDE"] = ",".join(excludes)
    if includes:
        environment[f"{ENV_PREFIX}_INCLUDE"] = ",".join([*TEMPLATE_GLOBS, *includes])
    token = options.pop("token")
    if token:
        environment[f"{ENV_PREFIX}_TOKEN"] = token
    if options.pop("manual"):
        environment[f"{ENV_PREFIX}_WATCH"] = "0"
    os.environ.update(environment)  # worker processes inherit the options this way
    if options.get("app_dir") is not None:
        sys.path.insert(0, options["app_dir"])  # as uvicorn does, before we import the app
    if options.get("env_file"):
        _load_env_file(options["env_file"])
    try:
        create_app()  # fail here, with a clear message, rather than inside uvicorn
    except ReloadError as exc:
        _report_start_failure(exc)
        raise SystemExit(STARTUP_FAILURE) from None
    uvicorn_main.callback(  # type: ignore[misc]
        app=f"{__name__}:create_app",
        factory=True,
        reload=False,
        reload_dirs=(),
        reload_includes=(),
        reload_excludes=(),
        reload_delay=0.25,
        interface="asgi3",
        **options,
    )


_created: Any = None


def create_app() -> Any:
    """The factory uvicorn calls in each worker: the user's app behind the middleware."""
    global _created
    if _created is None:
        from ._asgi import ReloadMiddleware
        from ._importer import caller_module
        from ._reloadable import is_wsgi
        from ._reloader import Reloader

        import_string = os.environ[APP_VARIABLE]
        config = Config.resolve(None, factory=os.environ.get(FACTORY_VARIABLE) == "1")
        reloader = Reloader(import_string, config, caller_module())
        if is_wsgi(reloader.app):
            raise WSGIAppError(
                f"{import_string} is a WSGI app (Flask, Django, ...), and this command serves ASGI apps. "
                "Wrap it with reloadable() in a module of its own and run a WSGI server with RELOAD_MIDDLEWARE=1, "
                "e.g. RELOAD_MIDDLEWARE=1 gunicorn myservice.wsgi:app --worker-class gthread --threads 8"
            )
        _created = ReloadMiddleware.from_reloader(reloader)
    return _created


def _load_env_file(path: str) -> None:
    """As uvicorn does it later in each worker; here too, for the app we check first."""
    try:
        dotenv = importlib.import_module("dotenv")  # python-dotenv: uvicorn[standard] has it
    except ImportError:  # uvicorn reports that itself
        return
    dotenv.load_dotenv(dotenv_path=path)


def _report_start_failure(exc: ReloadError) -> None:
    print(f"reload-middleware: {exc}", file=sys.stderr)
    cause = exc.__cause__
    if isinstance(exc, ImportStringError) and cause is not None:
        # The user's frames: importlib's and ours say nothing about what to fix.
        summary = traceback.TracebackException.from_exception(cause)
        summary.stack = traceback.StackSummary.from_list(
            [frame for frame in summary.stack if not is_machinery(frame.filename)]
        )
        print("".join(summary.format()), file=sys.stderr)


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def trigger(options: argparse.Namespace) -> int:
    try:
        targets = replicas(options.urls, options.all_addresses)
    except BadTarget as exc:
        print(f"reload-middleware trigger: {exc}", file=sys.stderr)
        return 2
    if options.batch < 1 or options.max_failures < 0:
        print("reload-middleware trigger: --batch must be at least 1, --max-failures at least 0", file=sys.stderr)
        return 2
    plan = Plan(
        token=options.token,
        force=options.force,
        admin_path=options.admin_path,
        timeout=options.timeout,
        batch=options.batch,
        check=options.check,
        max_failures=options.max_failures,
    )
    single = len(targets) == 1 and not options.json

    def report(result: Result) -> None:
        if single:  # one server: its answer, as a person reads it
            stream = sys.stderr if result.outcome.unreached else sys.stdout
            print(
                result.message if not result.outcome.unreached else f"reload-middleware trigger: {result.message}",
                file=stream,
            )
        elif not options.json:
            print(_summary_line(result), flush=True)

    results = roll_out(targets, plan, report)
    code = _exit_code(results)
    if options.json:
        print(json.dumps({"exit_code": code, "replicas": [result.as_dict() for result in results]}, indent=2))
    elif not single:
        for result in results:
            if result.outcome is Outcome.SKIPPED:
                print(_summary_line(result))
        done = sum(result.outcome.ok for result in results)
        print(f"{done} of {len(results)} replica(s) reloaded" + ("" if code == 0 else "; the roll-out stopped"))
    return code


def _summary_line(result: Result) -> str:
    """One replica: its address, versions before and after, outcome, time, and what it said."""
    before = "?" if result.before is None else result.before
    after = "?" if result.after is None else result.after
    message = result.message or "not reloaded: the roll-out stopped before it"
    took = f"{result.seconds * 1000:.0f} ms"
    return f"{result.replica.url}  v{before} -> v{after}  {result.outcome.value}  {took}  {message}"


def _exit_code(results: list[Result]) -> int:
    """2 if a replica refused or could not be reached, else 1 if one failed, else 0."""
    if any(result.outcome.unreached for result in results):
        return 2
    return 0 if all(result.outcome.ok or result.outcome is Outcome.SKIPPED for result in results) else 1

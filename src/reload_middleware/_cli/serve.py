"""``reload-middleware APP``: run any ASGI app under uvicorn with reloading on.

    reload-middleware myservice.main:app [uvicorn's options] [--watch DIR] [--token T] ...

uvicorn's own command, its options reused as they are, plus ours; each worker process gets the app
behind the middleware from ``create_app``.
"""

from __future__ import annotations

import importlib
import ipaddress
import os
import platform
import socket
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import click

from .. import __version__
from .._config import ENV_PREFIX, FLAG, OPTIONS, UNSET, Cli, Config, Option, Unset, declaration
from .._errors import STARTUP_FAILURE, ConfigError, ImportStringError, ReloadError, is_machinery


class WSGIAppError(ReloadError):
    """The command line was given a WSGI app: it serves ASGI apps."""


APP_VARIABLE = f"{ENV_PREFIX}_APP"
FACTORY_VARIABLE = f"{ENV_PREFIX}_APP_FACTORY"


# uvicorn's options we replace: reloading is in-process, always on (``--reload`` is accepted and
# changes nothing), its directories and patterns are ours; we serve one ASGI 3 interface; the
# version is ours; the app and the factory flag are the user's, behind our own factory.
_REPLACED = {"reload", "reload_dirs", "reload_includes", "reload_excludes", "reload_delay", "version"}
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

    generated = declared_parameters()
    declared = {parameter.name: option for parameter, option in generated if parameter.name is not None}
    ours: list[click.Parameter] = [
        click.Argument(["app"], envvar=APP_VARIABLE),
        click.Option(["--factory"], is_flag=True, help="Treat APP as an app factory, a () -> <app> callable."),
        click.Option(
            ["--reload"], is_flag=True, help="Accepted for uvicorn's sake: reloading is always on, in-process."
        ),
        *(parameter for parameter, _ in generated),
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
        callback=lambda **options: serve(uvicorn_main, options, declared),
        help="Run an ASGI app under uvicorn, reloading edited modules in-process (no restart). "
        "APP is module:attribute, e.g. myservice.main:app. uvicorn's options work as with uvicorn. "
        "To ask a running server to reload: reload-middleware trigger URL (see trigger --help).",
        context_settings={"auto_envvar_prefix": "UVICORN", "show_default": True},
    )


# The click type of each kind of option but flags; a new kind fails here, at once, rather than
# reaching the command line as text.
_CLICK_TYPES: dict[str, click.ParamType[Any]] = {
    "seconds": click.FLOAT,
    "count": click.INT,
    "text": click.STRING,
    "globs": click.STRING,
    "dirs": click.Path(exists=True, file_okay=False),
}


def declared_parameters() -> list[tuple[click.Option, Option]]:
    """A click option for each declared option that has flags, in the order they are declared."""
    return [(_click_option(option, option.cli), option) for option in OPTIONS if option.cli is not None]


def _click_option(option: Option, cli: Cli) -> click.Option:
    """The click option of a declared option with flags (``cli``, its declaration's)."""
    settings: dict[str, Any] = {"help": cli.help}
    if cli.envvar:
        settings |= {"envvar": option.variable, "show_envvar": True}
    if option.kind is FLAG:
        # A switch (``--manual``) keeps the name click gives it, so that ``UVICORN_MANUAL`` still
        # works; its value only says whether it was given (``_worker_value`` makes it the option's).
        if not _is_switch(option):
            settings["default"] = option.cli_default
        return click.Option(list(cli.flags), is_flag=True, **settings)
    if option.kind.many:
        settings["multiple"] = True
    elif option.cli_default is not None:  # none is click's own default: leave it to click
        settings["default"] = option.cli_default
    return click.Option(
        [*cli.flags, option.name],
        type=_CLICK_TYPES[option.kind.name],
        metavar=option.kind.metavar,
        callback=_checked_as(option),
        **settings,
    )


def _checked_as(option: Option) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback that checks a value as the middleware would, so that a bad one is named by
    the flag the user typed (the workers would name the variable the value travels in)."""

    def check(context: click.Context, parameter: click.Parameter, value: Any) -> Any:
        for one in value if option.kind.many else (value,):
            if one is not None:
                try:
                    shown = "the value given" if option.secret else repr(one)  # a secret is never echoed
                    option.check(shown, (one,) if option.kind.many else one)
                except ConfigError as exc:
                    raise click.BadParameter(str(exc), context, parameter) from None
        return value

    return check


def _is_switch(option: Option) -> bool:
    """A flag option given as one flag alone, which turns it away from the command line's default."""
    return option.kind is FLAG and option.cli is not None and "/" not in option.cli.flags[0]


def worker_environment(parsed: Mapping[str, Any], declared: Mapping[str, Option]) -> dict[str, str]:
    """The variables that hand the command line's options to the worker processes: ``parsed``
    holds click's values by parameter name, ``declared`` the option each parameter sets."""
    environment = {}
    for name, option in declared.items():
        value = _worker_value(option, parsed[name])
        if not isinstance(value, Unset):
            environment[option.variable] = option.kind.format(value)
    return environment


def _worker_value(option: Option, given: Any) -> Any:
    """The value a worker must see, or ``UNSET`` to leave its variable as the user set it (or not)."""
    if _is_switch(option):
        if given:
            return not option.cli_default
        # The command line's own default reaches the workers only where it is not the middleware's.
        return option.cli_default if option.cli_default != option.default else UNSET
    if given is None or given in ("", ()):
        return UNSET
    if option.cli is not None and option.cli.adds:
        return (*option.default, *given)
    return given


def main(arguments: list[str]) -> int:
    """Serve (every argument but ``trigger``): uvicorn's exit code on failure."""
    try:
        serve_command().main(arguments, prog_name="reload-middleware", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def serve(uvicorn_main: click.Command, options: dict[str, Any], declared: Mapping[str, Option]) -> None:
    """Set our options up for every worker process, check the app here (a wrong import string
    fails now, with uvicorn's exit code and the user's frames only), then run uvicorn's own
    command on our factory."""
    app, factory = options.pop("app"), options.pop("factory")
    options.pop("reload")
    # uvicorn's --interface: the app's own, which the middleware adapts (ASGI 2 or 3); what
    # uvicorn serves is always the middleware, an ASGI 3 app. WSGI has its own servers.
    if options.pop("interface") == "wsgi":
        print(
            "reload-middleware: --interface wsgi: this command serves ASGI apps; wrap a WSGI app with "
            "reloadable() and run a WSGI server, e.g. RELOAD_MIDDLEWARE=1 gunicorn myservice.wsgi:app",
            file=sys.stderr,
        )
        raise SystemExit(STARTUP_FAILURE)
    environment = {
        ENV_PREFIX: "1",
        APP_VARIABLE: app,
        FACTORY_VARIABLE: "1" if factory else "0",
        **worker_environment({name: options.pop(name) for name in declared}, declared),
        # For the status-page link the server logs (it carries the local credential).
        declaration("url").variable: f"http://{_url_host(options['host'])}:{options['port']}",
    }
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
        from .._importer import caller_module
        from .._middleware import ReloadMiddleware
        from .._pipeline import load
        from .._reloadable import is_wsgi

        import_string = os.environ[APP_VARIABLE]
        config = Config.resolve(None, factory=os.environ.get(FACTORY_VARIABLE) == "1")
        loaded = load(import_string, config, caller_module())
        if is_wsgi(loaded.app):
            raise WSGIAppError(
                f"{import_string} is a WSGI app (Flask, Django, ...), and this command serves ASGI apps. "
                "Wrap it with reloadable() in a module of its own and run a WSGI server with RELOAD_MIDDLEWARE=1, "
                "e.g. RELOAD_MIDDLEWARE=1 gunicorn myservice.wsgi:app --worker-class gthread --threads 8"
            )
        _created = ReloadMiddleware(loaded)
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
    """An address the server really listens on, for the logged link that carries the local
    credential: a name is resolved as uvicorn binds it (IPv4, unless the name has a colon), never
    left to a browser, which may try another address first (``localhost`` as ``::1``, where
    another local user can listen)."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    if ":" in host:
        return f"[{host}]"
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host  # uvicorn cannot bind it either, and says so

"""The options: ``Config``, whose fields declare them, and their resolution (an explicit keyword
argument wins, then the environment variable, then the default); ``Options``, their static type."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

from .._errors import ConfigError
from .declaration import (
    ADMIN_PATH,
    COUNT,
    DECLARED,
    DIRS,
    ENV_PREFIX,
    FLAG,
    GLOBS,
    SECONDS,
    TEMPLATE_GLOBS,
    TEXT,
    UNSET,
    Cli,
    Option,
    Unset,
    check_admin_path,
    check_dirs,
    check_header_name,
    check_max_versions,
    check_positive_seconds,
    check_seconds,
    check_token,
    declare,
    parse_flag,
)


class Options(TypedDict, total=False):
    """The keyword options both middlewares take; see ``ReloadMiddleware`` for what each means."""

    watch: bool
    watch_dirs: Sequence[str | os.PathLike[str]]
    exclude: Sequence[str]
    include: Sequence[str]
    reload_delay: float
    admin_path: str | None
    token: str | None
    version_header: str | None
    build_timeout: float
    drain_timeout: float
    overlap: bool
    retire_timeout: float
    max_versions: int
    startup_timeout: float
    error_page: bool
    warmup: bool
    live_refresh: bool


def is_enabled(enabled: bool | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether reloading is on: an explicit ``enabled`` wins over ``RELOAD_MIDDLEWARE``."""
    if enabled is not None:
        return enabled
    environ = os.environ if environ is None else environ
    return parse_flag(ENV_PREFIX, environ.get(ENV_PREFIX, ""))


@dataclass(frozen=True)
class Config:
    """Resolved options of one middleware; each field but ``factory`` declares its option."""

    factory: bool = False
    watch: bool = declare(
        FLAG,
        True,
        "watch the files and reload by itself; off (manual mode): nothing reloads until a `POST` to the admin "
        "endpoint, so a deploy that copies many files is never loaded half-way, and no request waits for a build",
        cli=Cli(("--manual",), f"Do not watch files: reload only on POST {ADMIN_PATH} or trigger.", envvar=False),
    )
    watch_dirs: tuple[Path, ...] = declare(
        DIRS,
        (),
        "directories whose modules may be reloaded; by default, as with `uvicorn --reload`, the directory that "
        "holds the app's top-level package (so a Django project's sibling apps are watched), less hidden "
        "directories, virtualenvs (`site-packages`) and `node_modules`",
        check=check_dirs,
        shown_default="the project root",
        cli=Cli(
            ("--watch", "--reload-dir"),
            "Directory whose modules may be reloaded; repeatable. [default: the project root, as uvicorn's]",
        ),
    )
    exclude: tuple[str, ...] = declare(
        GLOBS,
        (),
        "glob patterns of files never reloaded",
        cli=Cli(("--exclude", "--reload-exclude"), "Files never reloaded; repeatable."),
    )
    include: tuple[str, ...] = declare(
        GLOBS,
        TEMPLATE_GLOBS,
        "file names, besides Python modules, whose edits rebuild the app (its module and importers): templates "
        "by default. Files a module reads as it executes need no pattern: they are its dependencies",
        # Not read from the variable: the command line's patterns add to the templates, the variable's replace them.
        cli=Cli(
            ("--include", "--reload-include"),
            "Other files whose edits rebuild the app (.env, *.yaml); repeatable. "
            f"Templates ({', '.join(TEMPLATE_GLOBS)}) always do.",
            envvar=False,
            adds=True,
        ),
    )
    reload_delay: float = declare(
        SECONDS,
        0.0,
        "seconds the watched files must stay unchanged after an edit before a reload, so that a burst of saves "
        "(a checkout, a formatter run) is one reload; 0: as soon as the save is complete (a change every moment "
        "still reloads after ten times the delay)",
        check=check_seconds,
        cli=Cli(("--reload-delay",), "Wait until the files stayed unchanged this long after an edit before reloading."),
    )
    admin_path: str | None = declare(
        TEXT, ADMIN_PATH, "path of the admin endpoint; `None` (or empty) for none", check=check_admin_path
    )
    token: str | None = declare(
        TEXT,
        None,
        "bearer token the admin endpoint requires",
        check=check_token,
        secret=True,
        cli=Cli(("--token",), "Bearer token the admin endpoint requires from other machines."),
    )
    version_header: str | None = declare(
        TEXT,
        "x-reload-version",
        "response header naming the serving version; `None` (or empty) for none",
        check=check_header_name,
    )
    build_timeout: float = declare(
        SECONDS,
        5.0,
        "seconds a build (and the warm-up) may take before it is stopped; also the longest a request waits "
        "for a new version",
        check=check_positive_seconds,
        cli=Cli(("--build-timeout",), "How long importing a new version may take."),
    )
    drain_timeout: float = declare(
        SECONDS,
        30.0,
        "seconds the old version's requests the server is still computing get to finish before a build in "
        "watch mode, at most half of build_timeout (longer ones, and uploads, streams, websockets, finish on "
        "the old version)",
        check=check_seconds,
        cli=Cli(("--drain-timeout",), "How long a build waits for the requests the old version is computing."),
    )
    overlap: bool = declare(FLAG, False, "swap at once, while old requests still run (no pause for new ones)")
    retire_timeout: float = declare(
        SECONDS,
        60.0,
        "seconds an old version may keep streams and websockets; then its websockets are closed with 1012",
        check=check_seconds,
    )
    max_versions: int = declare(
        COUNT,
        4,
        "versions alive at once; beyond it the oldest one's long-lived connections are closed",
        check=check_max_versions,
    )
    startup_timeout: float = declare(
        SECONDS,
        30.0,
        "seconds a version's lifespan startup or shutdown may take (in watch mode a reload's startup is also "
        "bounded by build_timeout; a shutdown runs while reloads go on)",
        check=check_seconds,
    )
    error_page: bool = declare(
        FLAG,
        True,
        "while the latest reload is broken, browsers get an error page with the file and line to fix; API "
        "clients get the old version and an `x-reload-error` header",
        shown_default="on in watch mode",
        cli=Cli(
            ("--no-error-page",),
            "After a failed reload keep serving the old version to browsers too, without an error page.",
            envvar=False,
        ),
    )
    warmup: bool = declare(
        FLAG,
        True,
        "one request for a path no route matches, before the swap, so that lazy route set-up (FastAPI) is not "
        "paid by a user",
    )
    live_refresh: bool = declare(
        FLAG,
        True,
        "browser pages reload themselves after each reload and show the error while one is failing",
        shown_default="on in watch mode",
        cli=Cli(
            ("--live-refresh/--no-live-refresh",),
            "Pages reload themselves after each reload, and show the error while one is failing. "
            "[default: on in watch mode]",
            default=None,
        ),
    )
    # No keyword and no flag of its own: the server says where it listens (the command line sets it
    # from --host and --port); the link it logs carries the local credential, so it must be exact.
    url: str | None = declare(
        TEXT,
        None,
        "the server's base URL, for the status-page link it logs; the command line sets it from `--host` and `--port`",
        keyword=False,
    )

    @property
    def drain_before_build(self) -> float:
        """How long, in watch mode, the old version's computing requests get to finish before a
        build: a share of ``build_timeout``, the longest a new request waits for the new version."""
        return min(self.drain_timeout, self.build_timeout / 2)

    @classmethod
    def resolve(cls, environ: Mapping[str, str] | None = None, *, factory: bool = False, **explicit: Any) -> Config:
        """Resolve every option: ``explicit`` keyword arguments, then ``environ``, then defaults.

        Raises:
            ConfigError: an unknown option, or a value that cannot be used (naming where it came from).
        """
        keywords = [declared.name for declared in OPTIONS if declared.keyword]
        unknown = sorted(set(explicit) - set(keywords))
        if unknown:
            raise ConfigError(f"unknown option(s): {', '.join(unknown)}; the options are {', '.join(keywords)}")
        environ = os.environ if environ is None else environ
        values = {declared.name: _resolve(declared, explicit, environ) for declared in OPTIONS}
        # The browser features are development's: on in watch mode, whatever the server, off in
        # manual mode (production), unless set either way.
        if values["watch"] is False:
            for name in _ON_WHILE_WATCHING:
                if isinstance(values[name], Unset):
                    values[name] = False
        return cls(factory=factory, **{name: value for name, value in values.items() if not isinstance(value, Unset)})


_ON_WHILE_WATCHING = ("error_page", "live_refresh")


def _resolve(declared: Option, explicit: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
    """One option's checked value, or ``UNSET`` for its default."""
    given = explicit.get(declared.name, UNSET)
    if not isinstance(given, Unset):
        value, name, shown = given, declared.name, given
    elif declared.variable in environ:
        raw = environ[declared.variable]
        value, name, shown = declared.kind.parse(declared.variable, raw), declared.variable, raw
    else:
        return UNSET
    if declared.kind.many:
        value = tuple(value)
    declared.check(name if declared.secret else f"{name}={shown!r}", value)
    return declared.kind.finish(value)


OPTIONS: tuple[Option, ...] = tuple(
    dataclasses.replace(field.metadata[DECLARED], name=field.name)
    for field in dataclasses.fields(Config)
    if DECLARED in field.metadata
)
_BY_NAME = {declared.name: declared for declared in OPTIONS}


def declaration(name: str) -> Option:
    """The declared option called ``name`` (``declaration("token").variable``)."""
    return _BY_NAME[name]

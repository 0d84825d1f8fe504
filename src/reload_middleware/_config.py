"""Options and environment, validated with clear errors.

Every option is declared once, in ``OPTIONS``: its name, its parser for the environment, its
default and its check. It resolves the same way for both middlewares: an explicit keyword argument
wins, then the ``RELOAD_MIDDLEWARE_*`` environment variable, then the default. An error names what
the user actually set: the keyword (``drain_timeout=-1``) or the variable
(``RELOAD_MIDDLEWARE_DRAIN_TIMEOUT='-1'``).
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypedDict, TypeVar

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover
    from typing_extensions import Unpack

from ._errors import ConfigError

ENV_PREFIX = "RELOAD_MIDDLEWARE"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})

T = TypeVar("T")
# Files besides Python modules whose edits reload the app: templates, by default.
TEMPLATE_GLOBS = ("*.html", "*.htm", "*.jinja", "*.jinja2", "*.j2")


class Unset(enum.Enum):
    """Marks an option the caller did not pass, so that ``None`` can stay a meaningful value."""

    token = 0


UNSET = Unset.token


class Options(TypedDict, total=False):
    """The keyword options both middlewares take; see ``ReloadMiddleware`` for what each means."""

    watch: bool
    watch_dirs: Sequence[str | os.PathLike[str]]
    exclude: Sequence[str]
    include: Sequence[str]
    admin_path: str | None
    token: str | None
    version_header: str | None
    build_timeout: float
    drain_timeout: float
    startup_timeout: float
    retire_timeout: float
    overlap: bool
    max_versions: int
    error_page: bool
    warmup: bool
    live_refresh: bool


__all__ = ["OPTIONS", "UNSET", "Config", "Options", "Unpack", "is_enabled"]


def parse_flag(key: str, value: str) -> bool:
    """Read a boolean environment value; anything unexpected is an error naming key and value."""
    folded = value.strip().lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise ConfigError(f"{key}={value!r} is not a boolean: use one of 1/true/yes/on or 0/false/no/off")


def parse_seconds(key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{key}={value!r} is not a number of seconds") from None


def parse_count(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{key}={value!r} is not a whole number") from None


def _parse_text(key: str, value: str) -> str | None:
    return value or None


def _parse_dirs(key: str, value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(os.pathsep) if item.strip())


def _parse_globs(key: str, value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


# Each check gets what the user wrote, as ``name=value`` or ``VARIABLE='value'``, for its message.
def _check_seconds(given: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ConfigError(f"{given} must be a finite number of seconds, 0 or more")


def _check_positive_seconds(given: str, value: Any) -> None:
    _check_seconds(given, value)
    if value == 0:
        raise ConfigError(f"{given} must be more than 0 seconds")


def _check_admin_path(given: str, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.startswith("/")):
        raise ConfigError(f"{given} must start with '/'")


def _check_header_name(given: str, value: Any) -> None:
    if value is not None and (
        not isinstance(value, str) or not value.isascii() or not value.replace("-", "").isalnum()
    ):
        raise ConfigError(f"{given} is not a valid header name")


def _check_max_versions(given: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ConfigError(f"{given} must be 2 or more: the serving version and a new one")


def _check_token(given: str, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or value != value.strip()):
        raise ConfigError(f"{given} must not start or end with white space: no request could ever match it")


def _check_dirs(given: str, value: Any) -> None:
    for directory in value:
        if not Path(directory).is_dir():
            raise ConfigError(f"{given}: watch directory {str(directory)!r} does not exist or is not a directory")


def _no_check(given: str, value: Any) -> None:
    pass


@dataclass(frozen=True)
class Option(Generic[T]):
    """One option: keyword ``name``, variable ``RELOAD_MIDDLEWARE_<NAME>``, how to read and check it."""

    name: str
    parse: Callable[[str, str], T]
    default: T
    check: Callable[[str, Any], None] = _no_check
    secret: bool = False  # never repeat the value in a message

    @property
    def variable(self) -> str:
        return f"{ENV_PREFIX}_{self.name.upper()}"


OPTIONS: tuple[Option[Any], ...] = (
    Option("watch", parse_flag, True),
    Option("watch_dirs", _parse_dirs, (), _check_dirs),
    Option("exclude", _parse_globs, ()),
    Option("include", _parse_globs, TEMPLATE_GLOBS),
    Option("admin_path", _parse_text, "/__reload", _check_admin_path),
    Option("token", _parse_text, None, _check_token, secret=True),
    Option("version_header", _parse_text, "x-reload-version", _check_header_name),
    Option("build_timeout", parse_seconds, 5.0, _check_positive_seconds),
    Option("drain_timeout", parse_seconds, 30.0, _check_seconds),
    Option("startup_timeout", parse_seconds, 30.0, _check_seconds),
    Option("retire_timeout", parse_seconds, 60.0, _check_seconds),
    Option("overlap", parse_flag, False),
    Option("max_versions", parse_count, 4, _check_max_versions),
    Option("error_page", parse_flag, False),
    Option("warmup", parse_flag, True),
    Option("live_refresh", parse_flag, False),
)


def is_enabled(enabled: bool | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether reloading is on: an explicit ``enabled`` wins over ``RELOAD_MIDDLEWARE``."""
    if enabled is not None:
        return enabled
    environ = os.environ if environ is None else environ
    return parse_flag(ENV_PREFIX, environ.get(ENV_PREFIX, ""))


@dataclass(frozen=True)
class Config:
    """Resolved options of one middleware (defaults as declared in ``OPTIONS``)."""

    factory: bool = False
    watch: bool = True
    watch_dirs: tuple[Path, ...] = ()
    exclude: tuple[str, ...] = ()
    include: tuple[str, ...] = TEMPLATE_GLOBS
    admin_path: str | None = "/__reload"
    token: str | None = None
    version_header: str | None = "x-reload-version"
    build_timeout: float = 5.0
    drain_timeout: float = 30.0
    startup_timeout: float = 30.0
    retire_timeout: float = 60.0
    overlap: bool = False
    max_versions: int = 4
    error_page: bool = False
    warmup: bool = True
    live_refresh: bool = False

    @classmethod
    def resolve(cls, environ: Mapping[str, str] | None = None, *, factory: bool = False, **explicit: Any) -> Config:
        """Resolve every option: ``explicit`` keyword arguments, then ``environ``, then defaults.

        Raises:
            ConfigError: an unknown option, or a value that cannot be used (naming where it came from).
        """
        known = {option.name: option for option in OPTIONS}
        unknown = sorted(set(explicit) - set(known))
        if unknown:
            raise ConfigError(f"unknown option(s): {', '.join(unknown)}; the options are {', '.join(known)}")
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for option in OPTIONS:
            given = explicit.get(option.name, UNSET)
            if not isinstance(given, Unset):
                value, name, shown = given, option.name, given
            elif option.variable in environ:
                raw = environ[option.variable]
                value, name, shown = option.parse(option.variable, raw), option.variable, raw
            else:
                continue
            if option.name in ("watch_dirs", "exclude", "include"):
                value = tuple(value)
            option.check(name if option.secret else f"{name}={shown!r}", value)
            values[option.name] = value
        if "watch_dirs" in values:
            # Absolute, not resolved: a directory reached through a symlink (a release switch,
            # `current -> releases/v2`) is resolved again on every sweep.
            values["watch_dirs"] = tuple(Path(os.path.abspath(directory)) for directory in values["watch_dirs"])
        return cls(factory=factory, **values)

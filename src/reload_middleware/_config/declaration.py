"""How an option is declared: its kind (how the environment spells its values, both ways), its
check, its command-line side, and ``declare``, which makes a ``Config`` field of it."""

from __future__ import annotations

import dataclasses
import enum
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

from .._errors import ConfigError

ENV_PREFIX = "RELOAD_MIDDLEWARE"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})

# Files besides Python modules whose edits reload the app: templates, by default.
TEMPLATE_GLOBS = ("*.html", "*.htm", "*.jinja", "*.jinja2", "*.j2")
ADMIN_PATH = "/__reload"


class Unset(enum.Enum):
    """Marks an option the caller did not pass, so that ``None`` can stay a meaningful value."""

    token = 0


UNSET = Unset.token


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


def _format_dirs(value: Sequence[str | os.PathLike[str]]) -> str:
    # Absolute: a worker process reads them relative to its own working directory.
    return os.pathsep.join(os.path.abspath(directory) for directory in value)


def _absolute_dirs(value: tuple[str | os.PathLike[str], ...]) -> tuple[Path, ...]:
    # Absolute, not resolved: a directory reached through a symlink (a release switch,
    # `current -> releases/v2`) is resolved again on every sweep.
    return tuple(Path(os.path.abspath(directory)) for directory in value)


def _show_many(value: tuple[Any, ...]) -> str:
    return f"`{', '.join(map(str, value))}`" if value else "none"


@dataclass(frozen=True)
class Kind:
    """One type of option: how its variable is read and written, and how the docs show a value."""

    name: str
    parse: Callable[[str, str], Any]  # (variable, text) -> value, or ConfigError
    # value -> text ``parse`` reads back: the command line hands its options to worker processes so.
    format: Callable[[Any], str]
    show: Callable[[Any], str]  # a value in the docs (Markdown)
    keyword_type: object  # its keyword's annotation in ``Options``
    many: bool = False  # a sequence, repeatable on the command line
    note: str = ""  # how the variable separates items
    metavar: str | None = None
    finish: Callable[[Any], Any] = lambda value: value  # after the check: the value ``Config`` holds


FLAG = Kind("flag", parse_flag, lambda value: "1" if value else "0", lambda value: "on" if value else "off", bool)
SECONDS = Kind("seconds", parse_seconds, str, "{:g}".format, float, metavar="SECONDS")
COUNT = Kind("count", parse_count, str, str, int)
TEXT = Kind(
    "text", _parse_text, lambda value: value or "", lambda value: "none" if value is None else f"`{value}`", str | None
)
DIRS = Kind(
    "dirs",
    _parse_dirs,
    _format_dirs,
    _show_many,
    Sequence[str | os.PathLike[str]],
    many=True,
    note="`os.pathsep`-separated",
    finish=_absolute_dirs,
)
GLOBS = Kind(
    "globs", _parse_globs, ",".join, _show_many, Sequence[str], many=True, note="comma-separated", metavar="GLOB"
)


# Each check gets what the user wrote, as ``name=value`` or ``VARIABLE='value'``, for its message.
def check_seconds(given: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ConfigError(f"{given} must be a finite number of seconds, 0 or more")


def check_positive_seconds(given: str, value: Any) -> None:
    check_seconds(given, value)
    if value == 0:
        raise ConfigError(f"{given} must be more than 0 seconds")


def check_admin_path(given: str, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.startswith("/")):
        raise ConfigError(f"{given} must start with '/'")


def check_header_name(given: str, value: Any) -> None:
    if value is not None and (
        not isinstance(value, str) or not value.isascii() or not value.replace("-", "").isalnum()
    ):
        raise ConfigError(f"{given} is not a valid header name")


def check_max_versions(given: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ConfigError(f"{given} must be 2 or more: the serving version and a new one")


def check_token(given: str, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or value != value.strip()):
        raise ConfigError(f"{given} must not start or end with white space: no request could ever match it")


def check_dirs(given: str, value: Any) -> None:
    for directory in value:
        if not Path(directory).is_dir():
            raise ConfigError(f"{given}: watch directory {str(directory)!r} does not exist or is not a directory")


def _no_check(given: str, value: Any) -> None:
    pass


@dataclass(frozen=True)
class Cli:
    """An option on the command line. A flag option is either ``--x/--no-x`` or one flag alone,
    which turns it away from the command line's default (``--manual``: watch off)."""

    flags: tuple[str, ...]
    help: str
    default: Any = UNSET  # the command line's default, where it differs from the middleware's
    envvar: bool = True  # the command line reads the variable too, and says so in --help
    adds: bool = False  # what is given adds to the default rather than replacing it


@dataclass(frozen=True)
class Option:
    """One option: keyword ``name``, variable ``RELOAD_MIDDLEWARE_<NAME>``, how to read and check it."""

    name: str
    kind: Kind
    default: Any
    help: str  # what it means (Markdown), for the README and the docstrings
    check: Callable[[str, Any], None] = _no_check
    secret: bool = False  # never repeat the value in a message
    keyword: bool = True  # False: set in the environment only, never as a keyword argument
    cli: Cli | None = None
    shown_default: str | None = None  # the docs' words for a default worked out at run time

    @property
    def variable(self) -> str:
        return f"{ENV_PREFIX}_{self.name.upper()}"

    @property
    def cli_default(self) -> Any:
        return self.default if self.cli is None or isinstance(self.cli.default, Unset) else self.cli.default


DECLARED = "reload_middleware.option"


def declare(
    kind: Kind,
    default: Any,
    help: str,
    *,
    check: Callable[[str, Any], None] = _no_check,
    secret: bool = False,
    keyword: bool = True,
    cli: Cli | None = None,
    shown_default: str | None = None,
) -> Any:
    """A ``Config`` field that declares an option; its name is the field's (filled in by ``OPTIONS``)."""
    declared = Option("", kind, default, help, check, secret, keyword, cli, shown_default)
    return dataclasses.field(default=default, metadata={DECLARED: declared})

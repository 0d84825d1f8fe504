"""Options and environment, validated with clear errors.

Every option resolves the same way: an explicit keyword argument wins, then the
``RELOAD_MIDDLEWARE_*`` environment variable, then the default.
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, TypeVar

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover
    from typing_extensions import Unpack

from ._errors import ConfigError

ENV_PREFIX = "RELOAD_MIDDLEWARE"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})

T = TypeVar("T")


class Unset(enum.Enum):
    """Marks an option the caller did not pass, so that ``None`` can stay a meaningful value."""

    token = 0


UNSET = Unset.token


class Options(TypedDict, total=False):
    """The keyword options both middlewares take; see ``ReloadMiddleware`` for what each means."""

    watch: bool
    watch_dirs: Sequence[str | os.PathLike[str]]
    exclude: Sequence[str]
    admin_path: str | None
    token: str | None
    version_header: str | None
    drain_timeout: float
    startup_timeout: float
    retire_timeout: float
    overlap: bool
    max_versions: int
    error_page: bool
    warmup: bool


__all__ = ["UNSET", "Config", "Options", "Unpack", "is_enabled"]


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
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"{key}={value!r} is not a number of seconds") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise ConfigError(f"{key}={value!r} must be a finite number of seconds, 0 or more")
    return seconds


def parse_count(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{key}={value!r} is not a whole number") from None


def parse_list(value: str, separator: str) -> list[str]:
    return [item.strip() for item in value.split(separator) if item.strip()]


def is_enabled(enabled: bool | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether reloading is on: an explicit ``enabled`` wins over ``RELOAD_MIDDLEWARE``."""
    if enabled is not None:
        return enabled
    environ = os.environ if environ is None else environ
    return parse_flag(ENV_PREFIX, environ.get(ENV_PREFIX, ""))


@dataclass(frozen=True)
class Config:
    """Resolved options of one middleware."""

    factory: bool = False
    watch: bool = True
    watch_dirs: tuple[Path, ...] = ()
    exclude: tuple[str, ...] = ()
    admin_path: str | None = "/__reload"
    token: str | None = None
    version_header: str | None = "x-reload-version"
    drain_timeout: float = 30.0
    startup_timeout: float = 30.0
    retire_timeout: float = 60.0
    overlap: bool = False
    max_versions: int = 4
    error_page: bool = False
    warmup: bool = True

    @classmethod
    def resolve(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        factory: bool = False,
        watch: bool | Unset = UNSET,
        watch_dirs: Sequence[str | os.PathLike[str]] | Unset = UNSET,
        exclude: Sequence[str] | Unset = UNSET,
        admin_path: str | Unset | None = UNSET,
        token: str | Unset | None = UNSET,
        version_header: str | Unset | None = UNSET,
        drain_timeout: float | Unset = UNSET,
        startup_timeout: float | Unset = UNSET,
        retire_timeout: float | Unset = UNSET,
        overlap: bool | Unset = UNSET,
        max_versions: int | Unset = UNSET,
        error_page: bool | Unset = UNSET,
        warmup: bool | Unset = UNSET,
    ) -> Config:
        env = _Environment(os.environ if environ is None else environ)
        resolved_dirs = env.pick(watch_dirs, "WATCH_DIRS", lambda k, v: parse_list(v, os.pathsep), ())
        config = cls(
            factory=factory,
            watch=env.pick(watch, "WATCH", parse_flag, True),
            watch_dirs=tuple(Path(d).resolve() for d in resolved_dirs),
            exclude=tuple(env.pick(exclude, "EXCLUDE", lambda k, v: parse_list(v, ","), ())),
            admin_path=env.pick(admin_path, "ADMIN_PATH", lambda k, v: v or None, cls.admin_path),
            token=env.pick(token, "TOKEN", lambda k, v: v or None, None),
            version_header=env.pick(version_header, "VERSION_HEADER", lambda k, v: v or None, cls.version_header),
            drain_timeout=env.pick(drain_timeout, "DRAIN_TIMEOUT", parse_seconds, cls.drain_timeout),
            startup_timeout=env.pick(startup_timeout, "STARTUP_TIMEOUT", parse_seconds, cls.startup_timeout),
            retire_timeout=env.pick(retire_timeout, "RETIRE_TIMEOUT", parse_seconds, cls.retire_timeout),
            overlap=env.pick(overlap, "OVERLAP", parse_flag, False),
            max_versions=env.pick(max_versions, "MAX_VERSIONS", parse_count, cls.max_versions),
            error_page=env.pick(error_page, "ERROR_PAGE", parse_flag, False),
            warmup=env.pick(warmup, "WARMUP", parse_flag, True),
        )
        config._validate()
        return config

    def _validate(self) -> None:
        if self.admin_path is not None and not self.admin_path.startswith("/"):
            raise ConfigError(f"admin_path={self.admin_path!r} must start with '/'")
        if self.version_header is not None and (
            not self.version_header.isascii() or not self.version_header.replace("-", "").isalnum()
        ):
            raise ConfigError(f"version_header={self.version_header!r} is not a valid header name")
        if self.max_versions < 2:
            raise ConfigError(
                f"max_versions={self.max_versions!r} must be 2 or more: the serving version and a new one"
            )
        for name in ("drain_timeout", "startup_timeout", "retire_timeout"):
            value = getattr(self, name)
            if not 0 <= value < float("inf"):
                raise ConfigError(f"{name}={value!r} must be a finite number of seconds, 0 or more")
        for directory in self.watch_dirs:
            if not directory.is_dir():
                raise ConfigError(f"watch directory {str(directory)!r} does not exist or is not a directory")


class _Environment:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def pick(self, explicit: T | Unset, suffix: str, parse: Callable[[str, str], T], default: T) -> T:
        if not isinstance(explicit, Unset):
            return explicit
        key = f"{ENV_PREFIX}_{suffix}"
        raw = self._environ.get(key)
        return default if raw is None else parse(key, raw)

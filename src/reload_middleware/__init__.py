"""Reload edited modules of a running ASGI app in-process, as fresh module objects, without a restart."""

from __future__ import annotations

from typing import Any

from ._asgi import ReloadMiddleware
from ._config import is_enabled
from ._errors import BuildError, ConfigError, ImportStringError, ReloadError, RestartRequired
from ._handover import keep, on_retire
from ._importer import load_app

__version__ = "0.1.0"

__all__ = [
    "BuildError",
    "ConfigError",
    "ImportStringError",
    "ReloadError",
    "ReloadMiddleware",
    "RestartRequired",
    "keep",
    "on_retire",
    "reloadable",
]


def reloadable(import_string: str, *, enabled: bool | None = None, factory: bool = False, **options: Any) -> Any:
    """The app named by ``import_string``: untouched when reloading is off, wrapped when it is on.

    With ``RELOAD_MIDDLEWARE`` unset (production) this is exactly ``uvicorn``'s own import of the
    app: no wrapper, no thread, no cost. ``options`` are those of ``ReloadMiddleware``.
    """
    if not is_enabled(enabled, options.get("environ")):
        return load_app(import_string, factory=factory)
    return ReloadMiddleware(import_string, enabled=True, factory=factory, **options)

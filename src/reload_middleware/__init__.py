"""Reload edited modules of a running ASGI or WSGI app in-process, as fresh module objects, without a restart."""

from __future__ import annotations

import inspect
from typing import Any

from ._asgi import ReloadMiddleware
from ._config import is_enabled
from ._errors import BuildError, ConfigError, ImportStringError, ReloadError, RestartRequired
from ._handover import keep, on_retire
from ._importer import load_app
from ._wsgi import WSGIReloadMiddleware

__version__ = "0.1.0"

__all__ = [
    "BuildError",
    "ConfigError",
    "ImportStringError",
    "ReloadError",
    "ReloadMiddleware",
    "RestartRequired",
    "WSGIReloadMiddleware",
    "keep",
    "on_retire",
    "reloadable",
]


def reloadable(import_string: str, *, enabled: bool | None = None, factory: bool = False, **options: Any) -> Any:
    """The app named by ``import_string``: untouched when reloading is off, wrapped when it is on.

    With ``RELOAD_MIDDLEWARE`` unset (production) this is exactly the server's own import of the
    app: no wrapper, no thread, no cost. Otherwise an ASGI app gets ``ReloadMiddleware`` and a
    WSGI app (Flask, Django, ...) ``WSGIReloadMiddleware``; ``options`` are theirs.
    """
    app = load_app(import_string, factory=factory)
    if not is_enabled(enabled, options.get("environ")):
        return app
    if is_asgi(app):
        return ReloadMiddleware(import_string, enabled=True, factory=factory, **options)
    return WSGIReloadMiddleware(import_string, enabled=True, factory=factory, **options)


def is_asgi(app: Any) -> bool:
    """ASGI apps are coroutine functions (or objects whose ``__call__`` is one); WSGI apps are not."""
    if inspect.isroutine(app):
        return inspect.iscoroutinefunction(app)
    return inspect.iscoroutinefunction(type(app).__call__)

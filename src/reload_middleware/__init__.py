"""Reload edited modules of a running ASGI or WSGI app in-process, as fresh module objects, without a restart."""

from __future__ import annotations

from ._asgi import ReloadMiddleware
from ._errors import BuildError, BuildTimeout, ConfigError, ImportStringError, ReloadError, RestartRequired
from ._handover import keep, on_retire
from ._reloadable import reloadable
from ._wsgi import WSGIReloadMiddleware

__version__ = "0.1.0"

__all__ = [
    "BuildError",
    "BuildTimeout",
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

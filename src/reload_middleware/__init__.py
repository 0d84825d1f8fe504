"""Reload edited modules of a running ASGI or WSGI app in-process, as fresh module objects, without a restart.

Importing this package costs nothing in production: ``reloadable()`` with reloading off, ``keep``
and ``on_retire`` import no engine, no thread and none of anyio, watchfiles, click, httpx or
uvicorn. The middlewares are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import BuildError, BuildTimeout, ConfigError, ImportStringError, ReloadError, RestartRequired
from ._handover import keep, on_retire
from ._reloadable import reloadable

if TYPE_CHECKING:
    from ._middleware import ReloadMiddleware, WSGIReloadMiddleware

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

_LAZY = frozenset({"ReloadMiddleware", "WSGIReloadMiddleware"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import _middleware

        return getattr(_middleware, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

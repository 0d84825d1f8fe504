"""``reloadable()``: the app as it is in production, wrapped when reloading is on.

With reloading off it imports nothing but the app: the middlewares are imported only when it is on.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping
from typing import Any

from ._config import Config, is_enabled
from ._errors import STARTUP_FAILURE, ConfigError
from ._importer import caller_module, import_string_for, load_app


def reloadable(
    import_string: str | Any,
    *,
    enabled: bool | None = None,
    factory: bool = False,
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> Any:
    """The app named by ``import_string`` (``"module:attribute"``, or the app object itself, whose
    module is then found): untouched when reloading is off, wrapped when it is on.

    With ``RELOAD_MIDDLEWARE`` unset (production) this is exactly the server's own import of the
    app: no wrapper, no thread, no cost. Otherwise an ASGI app gets ``ReloadMiddleware`` and a
    WSGI app (Flask, Django, ...) ``WSGIReloadMiddleware``; ``options`` are theirs. A factory
    runs once either way.
    """
    try:
        on = is_enabled(enabled, environ)
        config = Config.resolve(environ, factory=factory, **options) if on else None
    except ConfigError as exc:
        if environ is not None:
            raise  # a program's own environment mapping: its caller handles the error
        # The server's environment, as whoever started it set it: one line that says what to
        # write instead, not the server's and importlib's frames, and the exit code uvicorn and
        # gunicorn give a server that cannot start (gunicorn: "Worker failed to boot").
        print(f"reload-middleware: {exc}", file=sys.stderr)
        raise SystemExit(STARTUP_FAILURE) from None
    if config is None:
        if not isinstance(import_string, str):  # the app object itself: it is the app
            return import_string() if factory else import_string
        return load_app(import_string, factory=factory)
    # Reloading on: only now the engine, the pipeline and the middlewares are imported.
    from ._middleware import ReloadMiddleware, WSGIReloadMiddleware
    from ._pipeline import load

    wrapper = caller_module()
    if not isinstance(import_string, str):  # the app object: reloading needs where it lives
        import_string = import_string_for(import_string, wrapper)
    loaded = load(import_string, config, wrapper)
    if (loaded.start_failure is not None and served_as_asgi()) or is_asgi(loaded.app):
        return ReloadMiddleware(loaded)
    return WSGIReloadMiddleware(loaded)


def served_as_asgi() -> bool:
    """For an app that failed to import at start, so that it cannot tell: whether the server
    running this process serves ASGI (uvicorn, hypercorn, daphne, or granian without
    ``--interface wsgi``; a gunicorn worker of uvicorn's counts too)."""
    if any(server in sys.modules for server in ("uvicorn", "hypercorn", "daphne")):
        return True
    return "granian" in sys.modules and "wsgi" not in sys.argv and "--interface=wsgi" not in sys.argv


def is_asgi(app: Any) -> bool:
    """ASGI apps are coroutine functions (or objects whose ``__call__`` is one); WSGI apps are not."""
    if inspect.isroutine(app):
        return inspect.iscoroutinefunction(app)
    return inspect.iscoroutinefunction(type(app).__call__)


def is_wsgi(app: Any) -> bool:
    """A WSGI app: not ASGI, and called as ``app(environ, start_response)`` (a function, or an
    object such as Flask's or Django's whose ``__call__`` takes those two)."""
    if is_asgi(app) or inspect.isclass(app):  # a class is an ASGI 2 app: instantiated with the scope
        return False
    target = app if inspect.isroutine(app) else type(app).__call__
    try:
        parameters = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return False
    if not inspect.isroutine(app):
        parameters = parameters[1:]  # self
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) == 2

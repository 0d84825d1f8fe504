"""What both middlewares share: one constructor, and the parts it composes.

Reloading off, a middleware is a pure pass-through around the bare app. Reloading on, it is
built around a ``Pipeline`` (the app's versions and their reloads) and an ``AdminEndpoint``; each
middleware adds how it serves a request, its runtime (ASGI lifespans; nothing for WSGI), and the
form of its version header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from .._admin import AdminEndpoint, LiveRefresh, live
from .._config import Config, Options, Unpack, is_enabled
from .._config.docs import docstring_args
from .._errors import user_cause
from .._importer import caller_module, import_string_for, load_app
from .._pipeline import LoadedApp, Pipeline, Runtime, load

AppT = TypeVar("AppT")

# The middlewares' ``Args:`` (Google style): the constructor's own, then every option, from its
# one declaration.
ARGUMENTS = f"""    Args:
        app: ``"module:attribute"`` (preferred), or the app object, whose defining module is looked up.
        enabled: overrides ``RELOAD_MIDDLEWARE``; when off, this is a pure pass-through.
        factory: the import string names a callable that returns the app.
        environ: the environment to read, ``os.environ`` by default.
{docstring_args()}"""


class Wrapping(Generic[AppT]):
    """The constructor and state both middlewares share (see ``ReloadMiddleware`` for the options)."""

    enabled: bool
    config: Config | None

    def __init__(
        self,
        app: str | AppT | LoadedApp,
        *,
        enabled: bool | None = None,
        factory: bool = False,
        environ: Mapping[str, str] | None = None,
        **options: Unpack[Options],
    ) -> None:
        loaded = _load(app, enabled, factory, environ, options)
        self.enabled = isinstance(loaded, LoadedApp)
        if not isinstance(loaded, LoadedApp):
            self.config = None
            self._bare: AppT = loaded
            return
        self.config = config = loaded.config
        if loaded.start_failure is not None:
            loaded.app = self._unavailable(type(user_cause(loaded.start_failure)).__name__)
        name, header = config.version_header, type(self)._version_header
        self._pipeline = pipeline = Pipeline(
            loaded, self._runtime(), lambda number: header(name, number) if name else None
        )
        # Live refresh lives under the admin path (its access rules): off without one.
        self._live = LiveRefresh(config.admin_path) if config.live_refresh and config.admin_path else None
        self._admin = AdminEndpoint(pipeline, self._live)
        pipeline.on_start(self._admin.announce)
        self._admin_path = config.admin_path
        self._own_paths = frozenset(
            [
                *([config.admin_path] if config.admin_path else []),
                *((self._live.script_path, self._live.events_path) if self._live else ()),
            ]
        )
        self._wait_limit = config.build_timeout
        # What every request reads, one attribute away.
        self._queue, self._history = pipeline.queue, pipeline.history
        self._versions, self._worker = pipeline.versions, pipeline.worker

    @property
    def app(self) -> AppT:
        """The app serving now: the current version's when reloading is on."""
        if self.enabled:
            return self._versions.current.app  # type: ignore[no-any-return]
        return self._bare

    def status(self) -> dict[str, Any]:
        """The admin endpoint's status JSON; ``{"enabled": False}`` when reloading is off."""
        if not self.enabled:
            return {"enabled": False}
        return self._pipeline.status()

    def _live_state(self, full: bool) -> dict[str, Any]:
        """What live refresh's event stream says now (``full``: with error details)."""
        return live.state_of(self._versions.current.number, self._history, full=full)

    def _runtime(self) -> Runtime:
        raise NotImplementedError

    @staticmethod
    def _unavailable(error: str) -> AppT:
        """What answers until the app, which failed to import at start, imports."""
        raise NotImplementedError

    @staticmethod
    def _version_header(name: str, number: int) -> Any:
        raise NotImplementedError


def _load(
    app: Any, enabled: bool | None, factory: bool, environ: Mapping[str, str] | None, options: Options
) -> LoadedApp | Any:
    """The app loaded for reloading, or the plain app when reloading is off.

    Raises:
        ConfigError: a bad option or environment value.
        ImportStringError: the app cannot be imported, or its defining module cannot be found.
    """
    if isinstance(app, LoadedApp):  # from reloadable(), which loaded it to choose the middleware
        return app
    if not is_enabled(enabled, environ):
        return load_app(app, factory=factory) if isinstance(app, str) else app
    wrapper = caller_module()
    import_string = app if isinstance(app, str) else import_string_for(app, wrapper)
    return load(import_string, Config.resolve(environ, factory=factory, **options), wrapper)

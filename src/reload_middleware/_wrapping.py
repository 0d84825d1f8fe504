"""What both middlewares share around the pipeline: a pure pass-through when reloading is off;
when it is on, the pipeline, the admin endpoint and the serving app. Each middleware adds how it
serves requests, its runtime (ASGI lifespans; nothing for WSGI), and the form of its version header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from ._admin import AdminEndpoint, status_of
from ._config import Config, Options
from ._live import LiveRefresh, state_of
from ._pipeline import Pipeline, Runtime
from ._reloader import Reloader, prepare

AppT = TypeVar("AppT")
WrappingT = TypeVar("WrappingT", bound="Wrapping[Any]")


class Wrapping(Generic[AppT]):
    enabled: bool
    config: Config
    _bare: AppT
    _pipeline: Pipeline
    _admin: AdminEndpoint
    _admin_path: str | None
    _live: LiveRefresh | None
    _wait_limit: float

    def _wrap(
        self, app: Any, enabled: bool | None, factory: bool, environ: Mapping[str, str] | None, options: Options
    ) -> None:
        bare, reloader = prepare(app, enabled=enabled, factory=factory, environ=environ, options=options)
        self.enabled = reloader is not None
        if reloader is None:
            self._bare = bare
        else:
            self._setup(reloader)  # the first version holds the app: nothing else may keep it alive

    @classmethod
    def from_reloader(cls: type[WrappingT], reloader: Reloader) -> WrappingT:
        """A middleware around an app already loaded (``reloadable()`` runs a factory only once)."""
        middleware = cls.__new__(cls)
        middleware._setup(reloader)
        return middleware

    def _setup(self, reloader: Reloader) -> None:
        self.enabled = True
        self.config = config = reloader.config
        name, header = config.version_header, type(self)._version_header
        self._pipeline = Pipeline(reloader, self._runtime(), lambda number: header(name, number) if name else None)
        self._admin = AdminEndpoint(self._pipeline)
        self._admin_path = config.admin_path
        self._live = self._admin.live
        self._wait_limit = config.build_timeout

    @property
    def app(self) -> AppT:
        """The app serving now: the current version's when reloading is on."""
        if self.enabled:
            return self._pipeline.versions.current.app  # type: ignore[no-any-return]
        return self._bare

    def _live_state(self, full: bool) -> dict[str, Any]:
        """What live refresh's event stream says now (``full``: with error details)."""
        pipeline = self._pipeline
        return state_of(pipeline.versions.current.number, pipeline.history, full=full)

    def status(self) -> dict[str, Any]:
        """The admin endpoint's status JSON (reloading on only)."""
        return status_of(self._pipeline)

    def _runtime(self) -> Runtime:
        raise NotImplementedError

    @staticmethod
    def _version_header(name: str, number: int) -> Any:
        raise NotImplementedError

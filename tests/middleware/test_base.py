"""The one constructor both middlewares share, in-process: off, a pass-through whose state reads
cleanly; on, built around an app loaded once, whichever way it was named."""

from __future__ import annotations

import pytest
from harness import AppTree

from reload_middleware import ReloadMiddleware, WSGIReloadMiddleware, reloadable
from reload_middleware._config import Config
from reload_middleware._errors import ImportStringError
from reload_middleware._pipeline import load

ASGI_APP = """
CALLS = []


async def app(scope, receive, send):
    pass


def create_app():
    CALLS.append(1)
    return app
"""

WSGI_APP = """
def app(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]
"""


@pytest.fixture
def asgi_tree(imported_tree: AppTree) -> AppTree:
    imported_tree.write("__init__.py", "")
    imported_tree.write("main.py", ASGI_APP)
    imported_tree.write("flask_like.py", WSGI_APP)
    return imported_tree


def test_a_disabled_middleware_is_the_bare_app_and_says_it_is_off(asgi_tree: AppTree) -> None:
    middleware = ReloadMiddleware(f"{asgi_tree.name}.main:app", enabled=False)
    bare = __import__(f"{asgi_tree.name}.main", fromlist=["app"]).app
    assert middleware.enabled is False
    assert middleware.app is bare
    assert middleware.config is None
    assert middleware.status() == {"enabled": False}


def test_a_disabled_middleware_reads_no_option(asgi_tree: AppTree) -> None:
    # Reloading off is production: a reloading option set for development must not break it.
    middleware = WSGIReloadMiddleware(
        f"{asgi_tree.name}.flask_like:app", environ={"RELOAD_MIDDLEWARE_DRAIN_TIMEOUT": "soon"}
    )
    assert middleware.enabled is False


def test_an_app_loaded_once_is_wrapped_without_importing_it_again(asgi_tree: AppTree) -> None:
    loaded = load(f"{asgi_tree.name}.main:create_app", Config(factory=True, watch=False), "a_wrapper_module")
    module = __import__(f"{asgi_tree.name}.main", fromlist=["CALLS"])
    middleware = ReloadMiddleware(loaded)
    try:
        assert middleware.enabled is True
        assert middleware.config is loaded.config
        assert middleware.app is module.app
        assert module.CALLS == [1]
        assert middleware.status()["version"] == 1
    finally:
        middleware._pipeline.close()


def test_reloadable_picks_the_middleware_by_the_kind_of_app_and_runs_a_factory_once(asgi_tree: AppTree) -> None:
    asgi = reloadable(f"{asgi_tree.name}.main:create_app", factory=True, enabled=True, environ={}, watch=False)
    wsgi = reloadable(f"{asgi_tree.name}.flask_like:app", enabled=True, environ={}, watch=False)
    try:
        assert isinstance(asgi, ReloadMiddleware)
        assert isinstance(wsgi, WSGIReloadMiddleware)
        assert __import__(f"{asgi_tree.name}.main", fromlist=["CALLS"]).CALLS == [1]
    finally:
        asgi._pipeline.close()
        wsgi._pipeline.close()


def test_the_middleware_docstrings_list_every_option_from_its_declaration() -> None:
    from reload_middleware._config import OPTIONS
    from reload_middleware._config.docs import docstring_args

    for middleware in (ReloadMiddleware, WSGIReloadMiddleware):
        assert middleware.__doc__ is not None
        assert docstring_args() in middleware.__doc__
    assert all(f"        {option.name}: " in docstring_args() for option in OPTIONS if option.keyword)


def test_reloadable_takes_the_app_object_too(asgi_tree: AppTree) -> None:
    module = __import__(f"{asgi_tree.name}.main", fromlist=["app"])
    assert reloadable(module.app, enabled=False) is module.app  # reloading off: the app itself
    wrapped = reloadable(module.app, enabled=True, environ={}, watch=False)
    try:
        assert isinstance(wrapped, ReloadMiddleware)
        assert wrapped.status()["version"] == 1
    finally:
        wrapped._pipeline.close()


def test_natural_mistakes_say_what_to_write_instead() -> None:
    async def inner_layer(scope: object, receive: object, send: object) -> None:  # held by no module
        pass

    with pytest.raises(ImportStringError, match=r"app.add_middleware\(ReloadMiddleware\) cannot work"):
        ReloadMiddleware(inner_layer, enabled=True, environ={}, watch=False)
    global DEFINED_HERE
    DEFINED_HERE = inner_layer  # an app in the module that wraps it
    with pytest.raises(ImportStringError, match="the module that wraps it, which is never reloaded"):
        reloadable(DEFINED_HERE, enabled=True, environ={}, watch=False)


DEFINED_HERE: object = None

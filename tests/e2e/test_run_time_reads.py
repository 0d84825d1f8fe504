"""Files project code reads as it serves are dependencies of its module (guarantee 10): pydantic-
settings' documented pattern (a cached function that reads ``.env`` at the first request) picks
up an edit of ``.env``, as a fresh process would; ``--include .env`` rebuilds the app on its edits."""

from __future__ import annotations

from apps import write_semantic_app
from harness import AppTree, ServerFactory, fresh_report, wait_until
from test_cli import CliServer

SETTINGS = {
    "config.py": """
        from functools import lru_cache

        from pydantic_settings import BaseSettings, SettingsConfigDict


        class Settings(BaseSettings):
            model_config = SettingsConfigDict(env_file=".env")
            greeting: str = "unset"


        @lru_cache
        def get_settings():
            return Settings()
    """,
    "report.py": """
        from PKG.config import get_settings


        def report():
            return get_settings().greeting
    """,
}


def test_a_dot_env_read_at_the_first_request_is_a_dependency(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(tree, SETTINGS)
    (tree.root / ".env").write_text("GREETING=one\n")
    server = serve()
    assert server.client.get("/").text == '"one"'  # read now, at the first request
    (tree.root / ".env").write_text("GREETING=two\n")
    assert fresh_report(tree.root, tree.name) == "two"
    wait_until(lambda: server.client.get("/").json() == "two", explain=lambda: (server.status(), server.log()))
    last = server.status()["last_reload"]
    assert f"{tree.name}.config" in last["modules"]
    assert f"{tree.name}.main" in last["modules"]  # and its importers


# An app that reads a file out of our sight (another process reads it): only the pattern tells.
UNSEEN_READ = """
    import subprocess

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    TEXT = subprocess.run(["cat", ".env"], capture_output=True, text=True, check=True).stdout


    async def home(request):
        return PlainTextResponse(TEXT)


    app = Starlette(routes=[Route("/", home)])
"""


def test_an_included_file_in_the_project_root_rebuilds_the_app(tree: AppTree) -> None:
    tree.write("__init__.py", "")
    tree.write("main.py", UNSEEN_READ)
    (tree.root / ".env").write_text("one")
    server = CliServer(tree, f"{tree.name}.main:app", "--include", ".env")
    try:
        assert server.client.get("/").text == "one"
        (tree.root / ".env").write_text("two")
        wait_until(lambda: server.client.get("/").text == "two", explain=server.log)
        assert server.client.get("/__reload").json()["reloads"] == 1
    finally:
        server.interrupt()


# Plugins found by listing their package at import, as pkgutil.iter_modules does.
PLUGINS = {
    "plugins/__init__.py": """
        import importlib
        import pkgutil

        NAMES = sorted(name for _, name, _ in pkgutil.iter_modules(__path__))
        LOADED = [importlib.import_module(f"{__name__}.{name}") for name in NAMES]
    """,
    "plugins/alpha.py": "NAME = 'alpha'\n",
    "report.py": """
        import PKG.plugins


        def report():
            return [plugin.NAME for plugin in PKG.plugins.LOADED]
    """,
}


def test_a_plugin_file_added_to_a_listed_package_is_found_and_a_removed_one_goes(
    tree: AppTree, serve: ServerFactory
) -> None:
    write_semantic_app(tree, PLUGINS)
    server = serve()
    assert server.client.get("/").json() == ["alpha"]
    tree.write("plugins/beta.py", "NAME = 'beta'\n")
    assert fresh_report(tree.root, tree.name) == ["alpha", "beta"]
    wait_until(lambda: server.client.get("/").json() == ["alpha", "beta"], explain=server.status)
    tree.path("plugins/alpha.py").unlink()
    assert fresh_report(tree.root, tree.name) == ["beta"]
    wait_until(lambda: server.client.get("/").json() == ["beta"], explain=server.status)
    tree.write("notes.txt", "a file nobody imports, reads or lists\n")
    answer = server.client.post("/__reload").json()
    assert answer["reloaded"] == [], server.status()["last_reload"]  # reloads nothing
    status = server.status()
    assert (status["reloads"], status["failures"]) == (2, 0)

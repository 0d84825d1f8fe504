"""Never stale-but-ok (guarantee 7): a reload whose app still reaches code of the replaced modules,
through a registry that was not reloaded, is reported as stale with the chain, not as a success."""

from __future__ import annotations

from apps import write_semantic_app
from harness import AppTree, ServerFactory, wait_until
from test_cli import run_cli

# A registry no plugin edit touches: plugins append themselves to it at import.
REGISTRY_APP = {
    "registry.py": """
        HANDLERS = []


        def register(handler):
            HANDLERS.append(handler)
            return handler
    """,
    "report.py": """
        import PKG.greet
        from PKG.registry import HANDLERS


        def report():
            return [handler() for handler in HANDLERS]
    """,
}


def greet(text: str, *, undo: bool = False) -> str:
    hook = "\non_retire(lambda: HANDLERS.remove(greet))\n" if undo else ""
    return f"""
from reload_middleware import on_retire
from PKG.registry import HANDLERS, register


@register
def greet():
    return {text!r}
{hook}"""


def test_an_old_function_left_in_a_registry_makes_the_reload_stale(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(tree, {**REGISTRY_APP, "greet.py": greet("hello 1")})
    server = serve(env={"RELOAD_MIDDLEWARE_ERROR_PAGE": "1"})
    assert server.client.get("/").json() == ["hello 1"]
    tree.write("greet.py", greet("hello 2"))
    error = wait_until(lambda: server.status()["last_error"])
    chain = f"{tree.name}.registry.HANDLERS -> function {tree.name}.greet.greet (replaced)"
    assert error["type"] == "StaleCode"
    assert chain in error["message"]
    assert "on_retire" in error["message"]  # and what to do about it
    status = server.status()
    assert (status["reloads"], status["failures"], status["version"]) == (1, 1, 2)
    wait_until(lambda: f"Reloaded {tree.name}.greet as version 2, but it is stale" in server.log())
    assert "now serving version 2" not in server.log()  # never logged as a success
    assert server.anonymous.get("/").headers["x-reload-error"].startswith("StaleCode")  # as the error page says it

    forced = server.client.post("/__reload", params={"force": "1"})  # everything anew: the registry too
    assert forced.json()["ok"] is True
    assert server.client.get("/").json() == ["hello 2"]
    assert server.status()["last_error"]["resolved"] is True


def test_a_post_that_reloads_into_stale_code_answers_so(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(tree, {**REGISTRY_APP, "greet.py": greet("hello 1")})
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    tree.write("greet.py", greet("hello 2"))
    answer = server.client.post("/__reload")
    assert answer.status_code == 500
    assert answer.json()["ok"] is False
    assert answer.json()["version"] == 2  # it did swap: the new plugin serves, next to the old one
    assert answer.json()["error"]["type"] == "StaleCode"
    assert server.client.get("/").json() == ["hello 1", "hello 2"]

    tree.write("greet.py", greet("hello 3"))  # `trigger` says so, and exits 1
    triggered = run_cli(tree, "trigger", server.url)
    assert triggered.returncode == 1
    assert "reloaded to version 3, but it is stale" in triggered.stdout


def test_code_of_an_older_version_still_reached_keeps_later_reloads_stale(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(tree, {**REGISTRY_APP, "greet.py": greet("hello 1")})  # never undone
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    tree.write("greet.py", greet("hello 2", undo=True))
    assert server.client.post("/__reload").json()["ok"] is False  # version 1's greet is left behind
    tree.write("greet.py", greet("hello 3", undo=True))
    answer = server.client.post("/__reload").json()  # version 2 undid its own: version 1's is still there
    assert answer["ok"] is False
    assert f"{tree.name}.registry.HANDLERS -> function {tree.name}.greet.greet" in answer["error"]["message"]
    assert server.client.get("/").json() == ["hello 1", "hello 3"]  # what a fresh process would not serve


def test_a_registration_undone_by_on_retire_is_not_stale(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(tree, {**REGISTRY_APP, "greet.py": greet("hello 1", undo=True)})
    server = serve()
    tree.write("greet.py", greet("hello 2", undo=True))
    wait_until(lambda: server.client.get("/").json() == ["hello 2"])
    status = server.status()
    assert (status["reloads"], status["failures"], status["last_error"]) == (1, 0, None)


def test_routes_added_to_an_app_that_is_not_reloaded_are_reported_stale(tree: AppTree, serve: ServerFactory) -> None:
    # The FastAPI app lives in a module no view edit touches; views add their routes to it.
    tree.write("__init__.py", "")
    tree.write("application.py", "from fastapi import FastAPI\n\napp = FastAPI()\n")
    views = "from PKG.application import app\n\n\n@app.get('/')\ndef home():\n    return {text!r}\n"
    tree.write("views.py", views.format(text="view 1"))
    tree.write("main.py", "import PKG.views\nfrom PKG.application import app\n")
    tree.write("asgi.py", "from reload_middleware import ReloadMiddleware\n\napp = ReloadMiddleware('PKG.main:app')\n")
    server = serve()
    tree.write("views.py", views.format(text="view 2"))
    error = wait_until(lambda: server.status()["last_error"])
    assert error["type"] == "StaleCode"
    assert f"function {tree.name}.views.home (replaced)" in error["message"]
    assert error["message"].startswith(
        f"the new version still reaches code of the replaced modules: {tree.name}.application.app"
    )
    assert server.client.get("/").json() == "view 1"  # what the report is about: the old route matches first

"""Frameworks beyond Starlette and FastAPI, against the real packages: edited templates of Quart
and of Starlette's ``Jinja2Templates``, and an edited Litestar handler, are served as a fresh
process serves them (Flask is in ``test_wsgi.py``, Django in ``test_django.py``)."""

from __future__ import annotations

import pytest
from harness import AppTree, ServerFactory, fresh_get, wait_until

QUART_APP = """
from quart import Quart, render_template

app = Quart(__name__)


@app.get("/page")
async def page():
    return await render_template("page.html", who="quart")
"""

# The templates object lives in a module of its own that no template edit re-executes.
STARLETTE_APP = {
    "templating.py": """
        from pathlib import Path

        from starlette.templating import Jinja2Templates

        templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
    """,
    "main.py": """
        from starlette.applications import Starlette
        from starlette.routing import Route

        from PKG.templating import templates


        async def page(request):
            return templates.TemplateResponse(request, "page.html", {"who": "starlette"})


        app = Starlette(routes=[Route("/page", page)])
    """,
}


@pytest.mark.parametrize("framework", ["quart", "starlette"])
def test_an_edited_template_is_served_as_a_fresh_process_serves_it(
    tree: AppTree, serve: ServerFactory, framework: str
) -> None:
    tree.write("__init__.py", "")
    if framework == "quart":
        tree.write("main.py", QUART_APP)
    else:
        for relative, source in STARLETTE_APP.items():
            tree.write(relative, source)
    tree.write("asgi.py", "from reload_middleware import ReloadMiddleware\n\napp = ReloadMiddleware('PKG.main:app')\n")
    tree.write("templates/page.html", "<p>Hello from {{ who }}, template 1</p>\n")
    server = serve()
    assert "template 1" in server.client.get("/page").text
    for number in (2, 3):  # and again, once the template is known
        marker = f"template {number}"
        tree.write("templates/page.html", f"<p>Hello from {{{{ who }}}}, {marker}</p>\n")
        wait_until(lambda: marker in server.client.get("/page").text, timeout=5)  # noqa: B023 (called here)
        response = server.client.get("/page")
        assert (response.status_code, response.text) == fresh_get(tree.root, f"{tree.name}.main:app", "/page")
    assert server.status()["failures"] == 0


LITESTAR_FILES = {
    "handlers.py": """
        from litestar import get


        @get("/hello")
        async def hello() -> dict[str, str]:
            return {"greeting": "GREETING"}
    """,
    "main.py": """
        from litestar import Litestar

        from PKG.handlers import hello

        app = Litestar(route_handlers=[hello])
    """,
}


def test_an_edited_litestar_handler_is_served_as_a_fresh_process_serves_it(tree: AppTree, serve: ServerFactory) -> None:
    tree.write("__init__.py", "")
    tree.write("main.py", LITESTAR_FILES["main.py"])
    tree.write("handlers.py", LITESTAR_FILES["handlers.py"].replace("GREETING", "hello 1"))
    tree.write("asgi.py", "from reload_middleware import ReloadMiddleware\n\napp = ReloadMiddleware('PKG.main:app')\n")
    server = serve()
    assert server.client.get("/hello").json() == {"greeting": "hello 1"}
    tree.write("handlers.py", LITESTAR_FILES["handlers.py"].replace("GREETING", "hello 2"))
    wait_until(lambda: server.client.get("/hello").json() == {"greeting": "hello 2"}, timeout=5)
    response = server.client.get("/hello")
    assert (response.status_code, response.text) == fresh_get(tree.root, f"{tree.name}.main:app", "/hello")
    assert server.status()["failures"] == 0

"""End to end: a FastAPI app (wrapped with ``reloadable``) under a real uvicorn server."""

from __future__ import annotations

from apps import FASTAPI_APP, write_app
from harness import AppTree, ServerFactory, wait_until


def test_fastapi_leaf_and_model_edits_are_served(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, FASTAPI_APP)
    server = serve()
    assert server.client.get("/").json() == {"value": "one"}
    pid = server.client.get("/process").json()["pid"]

    tree.write("leaf.py", 'VALUE = "two"\n')
    wait_until(lambda: server.client.get("/").json() == {"value": "two"})

    tree.write(
        "schemas.py",
        """
        from pydantic import BaseModel

        from PKG.leaf import VALUE


        class Answer(BaseModel):
            value: str = VALUE
            extra: int = 7
        """,
    )
    wait_until(lambda: server.client.get("/").json() == {"value": "two", "extra": 7})
    response = server.client.get("/")
    assert response.headers["x-reload-version"] == "3"
    assert server.client.get("/process").json()["pid"] == pid
    # The OpenAPI schema is rebuilt from the new models as well.
    assert "extra" in server.client.get("/openapi.json").json()["components"]["schemas"]["Answer"]["properties"]


def test_fastapi_broken_edit_keeps_serving_then_recovers(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, FASTAPI_APP)
    server = serve()
    tree.write(
        "schemas.py", "from pydantic import BaseModel\n\nclass Answer(BaseModel):\n    value: str = undefined_name\n"
    )
    wait_until(lambda: server.status()["last_error"] is not None)
    assert server.status()["last_error"]["type"] == "NameError"
    assert server.client.get("/").json() == {"value": "one"}

    tree.write("schemas.py", "from pydantic import BaseModel\n\nclass Answer(BaseModel):\n    value: str = 'fixed'\n")
    wait_until(lambda: server.client.get("/").json() == {"value": "fixed"})
    assert server.status()["version"] == 2


def test_reloadable_is_the_plain_app_when_disabled(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, FASTAPI_APP)
    tree.write(
        "probe.py",
        """
        from fastapi import FastAPI

        from PKG.asgi import app

        assert type(app) is FastAPI, type(app)
        """,
    )
    server = serve("PKG.probe:app", env={"RELOAD_MIDDLEWARE": "off"}, ready_path="/")
    response = server.client.get("/")
    assert response.json() == {"value": "one"}
    assert "x-reload-version" not in response.headers

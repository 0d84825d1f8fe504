"""Small app trees the end-to-end tests edit: a leaf, a mid-level module, routes, an app, a wrapper."""

from __future__ import annotations

from harness import AppTree

STARLETTE_APP = {
    "__init__.py": "",
    "leaf.py": """
        VALUE = "one"
    """,
    "mid.py": """
        from PKG.leaf import VALUE


        def thing() -> str:
            return f"mid({VALUE})"
    """,
    "routes.py": """
        import os
        import threading

        from starlette.responses import JSONResponse, PlainTextResponse
        from starlette.routing import Route

        from PKG import leaf
        from PKG.mid import thing


        async def home(request):
            return PlainTextResponse(leaf.VALUE)


        async def mid(request):
            return PlainTextResponse(thing())


        async def state(request):
            return JSONResponse({"built_by": request.state.built_by})


        async def process(request):
            return JSONResponse({"pid": os.getpid(), "threads": sorted(t.name for t in threading.enumerate())})


        routes = [Route("/", home), Route("/mid", mid), Route("/state", state), Route("/process", process)]
    """,
    "main.py": """
        from contextlib import asynccontextmanager

        from starlette.applications import Starlette

        from PKG.routes import routes
        from PKG.leaf import VALUE


        @asynccontextmanager
        async def lifespan(app):
            yield {"built_by": VALUE}


        app = Starlette(routes=routes, lifespan=lifespan)
    """,
    "asgi.py": """
        from reload_middleware import ReloadMiddleware

        app = ReloadMiddleware("PKG.main:app")
    """,
}

FASTAPI_APP = {
    "__init__.py": "",
    "leaf.py": """
        VALUE = "one"
    """,
    "schemas.py": """
        from pydantic import BaseModel

        from PKG.leaf import VALUE


        class Answer(BaseModel):
            value: str = VALUE
    """,
    "main.py": """
        import os

        from fastapi import FastAPI

        from PKG.schemas import Answer

        app = FastAPI()


        @app.get("/")
        def home() -> Answer:
            return Answer()


        @app.get("/process")
        def process() -> dict[str, int]:
            return {"pid": os.getpid()}
    """,
    "asgi.py": """
        from reload_middleware import reloadable

        app = reloadable("PKG.main:app")
    """,
}


def write_app(tree: AppTree, files: dict[str, str]) -> AppTree:
    for relative, source in files.items():
        tree.write(relative, source)
    return tree


# Every lifespan event lands in the file named by LIFECYCLE_LOG, as "start VALUE" / "stop VALUE":
# the tests read it to check that each version started and stopped exactly once.
LIFECYCLE_APP = {
    "__init__.py": "",
    "leaf.py": """
        VALUE = "v1"
    """,
    "main.py": """
        import asyncio
        import os
        from contextlib import asynccontextmanager

        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse, StreamingResponse
        from starlette.routing import Route, WebSocketRoute

        from PKG.leaf import VALUE


        def record(event):
            with open(os.environ["LIFECYCLE_LOG"], "a") as log:
                log.write(f"{event} {VALUE}\\n")


        @asynccontextmanager
        async def lifespan(app):
            if VALUE.startswith("fail-startup"):
                raise RuntimeError(f"startup refused for {VALUE}")
            if VALUE.startswith("hang-startup"):
                await asyncio.sleep(3600)
            record("start")
            yield {"value": VALUE}
            if VALUE.startswith("hang-shutdown"):
                await asyncio.sleep(3600)
            record("stop")


        async def home(request):
            return PlainTextResponse(f"{VALUE} {request.state.value}")


        async def slow(request):
            await asyncio.sleep(float(request.query_params["seconds"]))
            return PlainTextResponse(VALUE)


        async def stream(request):
            async def chunks():
                for index in range(int(request.query_params["chunks"])):
                    yield f"{VALUE}:{index}\\n"
                    await asyncio.sleep(float(request.query_params["interval"]))

            return StreamingResponse(chunks(), media_type="text/plain")


        async def upload(request):
            body = await request.body()
            return PlainTextResponse(f"{VALUE} received {len(body)} bytes")


        async def echo(websocket):
            await websocket.accept()
            async for text in websocket.iter_text():
                await websocket.send_text(f"{VALUE}:{text}")


        app = Starlette(
            routes=[
                Route("/", home),
                Route("/slow", slow),
                Route("/stream", stream),
                Route("/upload", upload, methods=["POST"]),
                WebSocketRoute("/ws", echo),
            ],
            lifespan=lifespan,
        )
    """,
    "asgi.py": """
        from reload_middleware import ReloadMiddleware

        app = ReloadMiddleware("PKG.main:app")
    """,
}


# The app of the semantics tests: `/` serves whatever `PKG.report.report()` returns, `/modules`
# shows the identity of every module of the package in `sys.modules` and on its parent package.
SEMANTIC_MAIN = """
import sys

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from PKG import report


async def home(request):
    return JSONResponse(report.report())


async def modules(request):
    prefix = __name__.rpartition(".")[0]
    entries = {name: id(module) for name, module in sys.modules.items() if name.split(".")[0] == prefix}
    parents = {}
    for name in entries:
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            parents[name] = id(getattr(sys.modules[parent], child, None))
    return JSONResponse({"modules": entries, "parents": parents})


app = Starlette(routes=[Route("/", home), Route("/modules", modules)])
"""


def write_semantic_app(tree: AppTree, files: dict[str, str]) -> AppTree:
    """A package whose ``report`` module (given in ``files``) decides what ``/`` serves."""
    write_app(tree, {"__init__.py": "", **files, "main.py": SEMANTIC_MAIN, "asgi.py": STARLETTE_APP["asgi.py"]})
    return tree


FLASK_APP = {
    "__init__.py": "",
    "leaf.py": """
        VALUE = "one"
    """,
    "main.py": """
        import os
        import time

        from flask import Flask, Response, request

        from PKG.leaf import VALUE

        app = Flask(__name__)


        @app.get("/")
        def home():
            return VALUE


        @app.get("/process")
        def process():
            return {"pid": os.getpid()}


        @app.get("/slow")
        def slow():
            time.sleep(float(request.args["seconds"]))  # a long-poll: the server computes it
            return VALUE


        @app.get("/stream")
        def stream():
            chunks, interval = int(request.args["chunks"]), float(request.args["interval"])

            def generate():
                for index in range(chunks):
                    yield f"{VALUE}:{index}\\n"
                    time.sleep(interval)

            return Response(generate(), mimetype="text/plain")
    """,
    "wsgi.py": """
        from reload_middleware import reloadable

        app = reloadable("PKG.main:app")
    """,
}

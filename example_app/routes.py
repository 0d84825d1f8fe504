"""HTTP endpoints."""

from __future__ import annotations

import os

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from example_app.greeting import greet
from example_app.services import Catalog


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse(greet("world"))


async def items(request: Request) -> JSONResponse:
    catalog: Catalog = request.state.catalog
    return JSONResponse([item.as_dict() for item in catalog.items()])


async def process(request: Request) -> JSONResponse:
    """Which process serves: a reload keeps it, a restart would change it."""
    return JSONResponse({"pid": os.getpid()})


routes = [Route("/", home), Route("/items", items), Route("/pid", process)]

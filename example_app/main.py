"""The app: routes plus a lifespan that builds the catalog into the app state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette

from example_app.routes import routes
from example_app.services import Catalog


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"catalog": Catalog()}


app = Starlette(routes=routes, lifespan=lifespan)

"""What the server runs: `uvicorn example_app.asgi:app`.

With RELOAD_MIDDLEWARE=1 the app is wrapped and reloads edited modules in-process; without it,
this is the plain Starlette app, untouched.
"""

from __future__ import annotations

from reload_middleware import reloadable

app = reloadable("example_app.main:app")

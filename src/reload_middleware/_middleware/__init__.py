"""The two middlewares, thin over the pipeline: route each request to the serving version, count
it, and hand the admin endpoint its requests. ASGI adds lifespans and a warm-up; WSGI has neither.
"""

from __future__ import annotations

from .asgi import ReloadMiddleware
from .wsgi import WSGIReloadMiddleware

__all__ = ["ReloadMiddleware", "WSGIReloadMiddleware"]

"""The admin surface: the endpoint (status and reload answers), its access rules, its
pages, and live refresh. Independent of ASGI or WSGI: the middlewares translate requests.
"""

from __future__ import annotations

from . import live
from .access import REASONS, AdminRequest, AdminResponse
from .endpoint import AdminEndpoint
from .live import LiveRefresh

__all__ = ["REASONS", "AdminEndpoint", "AdminRequest", "AdminResponse", "LiveRefresh", "live"]

"""Our log lines, formatted like the server's own.

Under uvicorn, gunicorn or hypercorn the root logger usually has no handler, and our INFO lines
would be lost (or printed bare by Python's last-resort handler, WARNING and up only). The
``reload_middleware`` logger then borrows the server's error-log handlers: same format, same
destination. An application that configured logging itself is left alone.
"""

from __future__ import annotations

import logging

PACKAGE_LOGGER = "reload_middleware"
_SERVER_LOGGERS = ("uvicorn", "gunicorn.error", "hypercorn.error", "granian")


def follow_server_logging() -> None:
    ours = logging.getLogger(PACKAGE_LOGGER)
    if ours.handlers or logging.getLogger().handlers:
        return
    for name in _SERVER_LOGGERS:
        server = logging.getLogger(name)
        if server.handlers:
            for handler in server.handlers:
                ours.addHandler(handler)
            ours.setLevel(logging.INFO)
            ours.propagate = False
            return

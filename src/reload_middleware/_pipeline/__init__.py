"""The reload pipeline: threads, the reload transaction, versions and their retirement.

What the middlewares and the admin endpoint use: ``load()`` an app, a ``Pipeline`` around it, and
the ``AppVersion`` and ``Visit`` through which requests are counted.
"""

from __future__ import annotations

from .bounded import run_bounded
from .history import History
from .pipeline import LoadedApp, Pipeline, load
from .transaction import NoLifespan, Runtime
from .versions import AppVersion, Stopping, Visit

__all__ = [
    "AppVersion",
    "History",
    "LoadedApp",
    "NoLifespan",
    "Pipeline",
    "Runtime",
    "Stopping",
    "Visit",
    "load",
    "run_bounded",
]

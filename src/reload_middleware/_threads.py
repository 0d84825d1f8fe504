"""The package's own threads, which must hold nothing of any app version.

``threading.Thread()`` keeps the ``sys.excepthook`` of the moment it was made, as a fallback for a
crash while ``sys.excepthook`` is unset. An app that sets its own hook at import would have that
hook, and through it the whole version, held by every thread of ours made while it served (the
leak checker, made at the first retirement, held version 2 for the life of the process). Ours
report their crashes through ``threading.excepthook`` alone.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any


def own_thread(target: Callable[..., object], name: str, args: tuple[Any, ...] = ()) -> threading.Thread:
    """A daemon thread of this package's that keeps no reference to the app's hooks."""
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    if hasattr(thread, "_invoke_excepthook"):  # CPython's Thread since 3.8
        thread._invoke_excepthook = _report_crash
    return thread


def _report_crash(thread: threading.Thread) -> None:
    kind, value, traceback = sys.exc_info()
    threading.excepthook(threading.ExceptHookArgs((kind, value, traceback, thread)))

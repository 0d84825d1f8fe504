"""Which watched files changed: the watcher thread (inotify, or watchfiles elsewhere), the watched
directories and which files in them count, and the change detector that compares files with what
the serving version loaded.

Imports nothing of the engine or the pipeline; the pipeline composes it with the engine.
"""

from __future__ import annotations

from .detector import CLOCK_MARGIN_NS, ChangeDetector, Fingerprint, fingerprint
from .dirs import WatchedDirs
from .filters import SourceFilter
from .watcher import Watcher

__all__ = ["CLOCK_MARGIN_NS", "ChangeDetector", "Fingerprint", "SourceFilter", "WatchedDirs", "Watcher", "fingerprint"]

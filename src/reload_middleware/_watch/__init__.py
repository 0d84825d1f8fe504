"""Which watched files changed: the watcher thread (inotify, or watchfiles elsewhere), the watched
directories, and the change detector that compares files with what the serving version loaded.

Imports nothing of the engine or the pipeline; the pipeline composes it with the engine.
"""

from __future__ import annotations

from .dirs import WatchedDirs
from .watcher import ChangeDetector, Fingerprint, SourceFilter, Watcher, fingerprint

__all__ = ["ChangeDetector", "Fingerprint", "SourceFilter", "WatchedDirs", "Watcher", "fingerprint"]

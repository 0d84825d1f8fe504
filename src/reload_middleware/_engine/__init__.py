"""The reload engine: the module graph, and loading a module group anew with an exact rollback.

No threads, no HTTP, no file watching: the pipeline decides when, the engine does what.
"""

from __future__ import annotations

from .graph import ModuleGraph
from .loader import GroupLoad, ImportRecorder, LoadedGroup

__all__ = ["GroupLoad", "ImportRecorder", "LoadedGroup", "ModuleGraph"]

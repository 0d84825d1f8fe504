"""The reload engine: the module graph, the group a change affects, and importing a group anew
with an exact rollback.

No threads, no HTTP, no file watching: the pipeline decides when, the engine does what.
"""

from __future__ import annotations

from .builder import build_group, import_first
from .graph import ModuleGraph
from .loader import GroupLoad, ImportRecorder, LoadedGroup
from .planner import group_for
from .reads import RunTimeReads

__all__ = [
    "GroupLoad",
    "ImportRecorder",
    "LoadedGroup",
    "ModuleGraph",
    "RunTimeReads",
    "build_group",
    "group_for",
    "import_first",
]

"""What happens to the module objects of a version when it retires.

Their modules' ``on_retire`` hooks run; framework caches that key on functions are emptied (left
alone, FastAPI's caches hold every old module graph alive: +15 MB a reload on a 190-module app);
and their namespaces are handed to the leak tracker, which reports any that stay referenced.
"""

from __future__ import annotations

import sys
import typing
from types import ModuleType

from ._handover import run_module_hooks
from ._leaks import LeakTracker

# Libraries whose module-level functools caches take app objects (endpoints, models) as keys.
_FRAMEWORKS = ("fastapi", "starlette", "pydantic")


def retire_modules(version: int, modules: dict[str, ModuleType], leaks: LeakTracker) -> None:
    run_module_hooks(modules.values())
    clear_framework_caches()
    leaks.track(version, modules)


def clear_framework_caches() -> None:
    """Empty the ``lru_cache``\\s at module level of the frameworks, and ``typing``'s caches."""
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in _FRAMEWORKS or not isinstance(module, ModuleType):
            continue
        for value in list(vars(module).values()):
            if hasattr(value, "cache_info") and callable(getattr(value, "cache_clear", None)):
                value.cache_clear()
    for cleanup in getattr(typing, "_cleanups", ()):
        cleanup()

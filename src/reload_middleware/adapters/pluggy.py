"""pluggy: plugins that modules of the group registered (often themselves, at import) leave their
plugin managers before the new import, which registers them anew; a rollback registers the old
ones again. Without this, every reload of such a module fails: "Plugin name already registered"."""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping
from types import ModuleType

from . import declared_by

FRAMEWORK = "pluggy"


def release(modules: Mapping[str, ModuleType]) -> Callable[[], None]:
    import pluggy

    # Plugin managers live wherever the application put them: found among all objects, which
    # costs a heap scan (a few ms per 100,000 objects), and only in processes that use pluggy.
    managers = [value for value in gc.get_objects() if isinstance(value, pluggy.PluginManager)]
    released: list[tuple[pluggy.PluginManager, str, object]] = []
    for manager in managers:
        for name, plugin in manager.list_name_plugin():
            if plugin is not None and declared_by(plugin, modules):
                manager.unregister(plugin)
                released.append((manager, name, plugin))

    def undo() -> None:
        for manager, name, plugin in released:
            current = manager.get_plugin(name)
            if current is not None and current is not plugin:
                manager.unregister(name=name)  # what the discarded build registered
            if current is not plugin:
                manager.register(plugin, name=name)

    return undo

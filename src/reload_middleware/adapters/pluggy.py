"""pluggy: plugins that modules of the group registered (often themselves, at import) leave their
plugin managers before the new import, which registers them anew; a rollback registers the old
ones again. Without this, every reload of such a module fails: "Plugin name already registered".

The old version's ``on_retire`` hooks run at its retirement, after the new version registered its
plugins: a hook that unregisters by name (``pm.unregister(name="greeter")``) would take the new
plugin out. What the new version registered under a released name is registered again after the
old version's hooks, with a warning."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from . import declared_by, instances_of

FRAMEWORK = "pluggy"
logger = logging.getLogger(__name__)

_released: list[tuple[Any, str, object]] = []  # by the build under way: (manager, name, old plugin)
_successors: list[tuple[Any, str, object]] = []  # what took their names: (manager, name, new plugin)


def release(modules: Mapping[str, ModuleType]) -> Callable[[], None]:
    import pluggy

    managers = instances_of(pluggy.PluginManager)
    released: list[tuple[Any, str, object]] = []
    for manager in managers:
        for name, plugin in manager.list_name_plugin():
            if plugin is not None and declared_by(plugin, modules):
                manager.unregister(plugin)
                released.append((manager, name, plugin))
    _released[:] = released

    def undo() -> None:
        _released.clear()
        for manager, name, plugin in released:
            current = manager.get_plugin(name)
            if current is not None and current is not plugin:
                manager.unregister(name=name)  # what the discarded build registered
            if current is not plugin:
                manager.register(plugin, name=name)

    return undo


def committed() -> None:
    """The new version serves: remember what it registered under the released names."""
    released = list(_released)
    _released.clear()
    for manager, name, plugin in released:
        successor = manager.get_plugin(name)
        if successor is not None and successor is not plugin:
            _successors.append((manager, name, successor))


def retire(modules: Mapping[str, ModuleType]) -> None:
    """After the old version's hooks: its successors are registered, whatever the hooks did."""
    successors = list(_successors)
    _successors.clear()
    for manager, name, plugin in successors:
        if manager.get_plugin(name) is None and not manager.is_registered(plugin):
            manager.register(plugin, name=name)
            logger.warning(
                "an on_retire hook of the replaced version unregistered plugin %r of the version that "
                "replaced it: registered again (reloading takes a module's plugins out by itself; a hook "
                "should unregister only its own plugin object)",
                name,
            )

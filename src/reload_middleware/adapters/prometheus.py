"""prometheus_client: metrics a module declares at top level (``HITS = Counter(...)``) leave their
registries before the module is imported anew, which declares them again; a rollback puts them
back. Without this, every edit of such a module failed with "Duplicated timeseries in
CollectorRegistry", while a fresh process served it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType

from . import instances_of, namespace_values, owned_by

FRAMEWORK = "prometheus_client"


def release(modules: Mapping[str, ModuleType]) -> Callable[[], None]:
    from prometheus_client.registry import CollectorRegistry

    held = namespace_values(modules)
    registries = instances_of(CollectorRegistry)  # the default one, or the application's own
    candidates = [
        (registry, collector, list(names))
        for registry in registries
        for collector, names in list(registry._collector_to_names.items())
        if id(collector) in held
    ]
    # A metric imported from a module outside the group stays: nothing would declare it again.
    declared = {id(collector) for collector in owned_by([collector for _, collector, _ in candidates], modules)}
    released = [entry for entry in candidates if id(entry[1]) in declared]
    for registry, collector, _ in released:
        registry.unregister(collector)

    def undo() -> None:
        for registry, collector, names in released:
            for name in names:  # what the discarded build declared under the same names
                current = registry._names_to_collectors.get(name)
                if current is not None and current is not collector:
                    registry.unregister(current)
            registry.register(collector)

    return undo

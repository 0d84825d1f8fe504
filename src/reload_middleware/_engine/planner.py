"""Which module group a change affects: the changed modules this process can reload, their
transitive importers (cycles together), the app root, and the companions a framework rebuilds
from them; and, for each changed module it cannot reload, why a restart is needed."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass

from .. import adapters
from .graph import ModuleGraph


@dataclass(frozen=True)
class Grouping:
    """``reloadable``: the changed modules that can reload; ``group``: every module to import anew
    (empty when none can); ``restart_required``: a sentence for each changed module that cannot."""

    reloadable: frozenset[str]
    group: frozenset[str]
    restart_required: tuple[str, ...]


def group_for(
    graph: ModuleGraph,
    changed: Set[str],
    *,
    root_module: str,
    is_protected: Callable[[str], bool],
    force: bool = False,
) -> Grouping:
    """The group to reload for the ``changed`` modules (``force``: every reloadable module)."""
    restart_required: list[str] = []
    reloadable: set[str] = set()
    group: set[str] = set()
    framework_reasons = adapters.restart_reasons(changed)
    for name in sorted(changed):
        affected = {other for other in graph.affected([name]) if not is_protected(other)}
        reason = _restart_reason(graph, name, affected, framework_reasons)
        if reason is None:
            reloadable.add(name)
            group |= affected
        else:
            restart_required.append(reason)
    if force:
        group = {name for name, tracked in graph.modules.items() if tracked.reloadable}
    elif not reloadable:
        return Grouping(frozenset(), frozenset(), tuple(restart_required))
    group.add(root_module)
    for name in adapters.companions(group):
        if name in graph.modules and name not in group:
            group |= {other for other in graph.affected([name]) if not is_protected(other)}
    return Grouping(frozenset(reloadable), frozenset(group), tuple(restart_required))


def _restart_reason(graph: ModuleGraph, name: str, affected: Set[str], framework: Mapping[str, str]) -> str | None:
    """Why the changed module ``name`` cannot reload in this process, or ``None`` if it can."""
    tracked = graph.modules[name]
    if not tracked.reloadable:
        reason = "an extension module" if tracked.is_extension else "not reloadable"
        return f"{name} ({tracked.path}) changed and is {reason}: restart the server"
    if name in framework:
        return f"{name} ({tracked.path}) changed: {framework[name]}"
    blocked = sorted(other for other in affected if not graph.modules[other].reloadable)
    if blocked:
        return (
            f"{name} changed and is imported by {', '.join(blocked)}, which declared itself not "
            "reloadable: restart the server"
        )
    return None

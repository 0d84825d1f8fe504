"""Framework adapters: process-wide registries that outlive a module group.

A framework that keeps what a module declared in a registry of its own (a plugin manager, an ORM's
metadata, a URL resolver's cache) would hand out the old declarations after a reload, or refuse
the new ones. Before a group is imported anew, each adapter takes out of its framework's
registries what the group's modules put there, and returns how to put it back if the reload is
rolled back. An adapter is active only when its framework is imported: nothing is imported here.

Adding one: a module that follows ``Adapter`` (below), listed in ``_ADAPTERS``.
"""

from __future__ import annotations

import gc
import importlib
import logging
import sys
from collections.abc import Callable, Mapping, Set
from types import ModuleType
from typing import Any, Protocol

logger = logging.getLogger(__name__)

_ADAPTERS = ("apscheduler", "django", "fastapi", "opentelemetry", "pluggy", "prometheus", "sqlalchemy")
Undo = Callable[[], None]


class Adapter(Protocol):
    """What an adapter module provides: ``FRAMEWORK``, the top-level module name that makes it
    active once imported, and ``release(modules)``, which takes what ``modules`` declared out of
    the framework's registries and returns what puts it back (for a rollback).

    Optional hooks, each called only if the module defines it:

    - ``companions(group) -> set[str]``: modules to re-execute with any group (Django's root
      URLconf, built from every app);
    - ``imported_at_start(group) -> set[str]``: members the framework imported at its start, which
      nothing imports again by itself (Django's ``models`` and ``admin``): imported right after
      the app;
    - ``restart_reasons(changed) -> dict[str, str]``: changed modules the framework read once at
      its start (Django's settings), which only a restart applies, with the reason;
    - ``committed()``: the new modules are in ``sys.modules``; empty the caches a request of the old
      version may have filled during the build (Django's URL resolvers);
    - ``retire(modules)``: the version that served ``modules`` retired; stop what they started,
      which would run their code on (a scheduler, a tracer provider's exporter thread);
    - ``retired()``: a version's modules retired; empty the caches keyed on its functions
      (FastAPI's, ``typing``'s), which would hold it alive.
    """

    FRAMEWORK: str

    def release(self, modules: Mapping[str, ModuleType]) -> Undo: ...


def _active() -> list[ModuleType]:
    """The adapters whose framework this process has imported."""
    adapters = [importlib.import_module(f"{__name__}.{name}") for name in _ADAPTERS]
    return [adapter for adapter in adapters if adapter.FRAMEWORK in sys.modules]


def companions(group: Set[str]) -> set[str]:
    """Modules to reload along with ``group``, for the frameworks that build them from it."""
    return {name for adapter in _active() if hasattr(adapter, "companions") for name in adapter.companions(group)}


def restart_reasons(changed: Set[str]) -> dict[str, str]:
    """Changed modules a framework read once at its start (Django's settings): why each needs a
    restart."""
    found = (adapter.restart_reasons(changed) for adapter in _active() if hasattr(adapter, "restart_reasons"))
    return {name: reason for reasons in found for name, reason in reasons.items()}


def imported_at_start(group: Set[str]) -> set[str]:
    """Members of ``group`` a framework imported at its start, to import again after the app."""
    found = (adapter.imported_at_start(group) for adapter in _active() if hasattr(adapter, "imported_at_start"))
    return {name for names in found for name in names}


def committed() -> None:
    """The new version's modules are in ``sys.modules``: caches filled meanwhile start afresh."""
    for adapter in _active():
        if hasattr(adapter, "committed"):
            adapter.committed()


def retire(modules: Mapping[str, ModuleType]) -> None:
    """The version that served ``modules`` retired: what they started stops."""
    for adapter in _active():
        if hasattr(adapter, "retire"):
            try:
                adapter.retire(modules)
            except Exception:
                logger.exception("could not stop what a retired version started (%s)", adapter.FRAMEWORK)


def retired() -> None:
    """A version's modules retired: caches keyed on its functions let go of them."""
    for adapter in _active():
        if hasattr(adapter, "retired"):
            adapter.retired()


def release(modules: Mapping[str, ModuleType]) -> Undo:
    """Take out of every loaded framework's registries what ``modules`` declared there; returns
    what puts it all back (for a rollback)."""
    undos = [adapter.release(modules) for adapter in _active()]

    def undo() -> None:
        for restore in reversed(undos):
            try:
                restore()
            except Exception:
                logger.exception("could not restore a framework registry after a rollback")

    return undo


def instances_of(cls: type) -> list[Any]:
    """Every live object that is a ``cls`` (a plugin manager, a registry, a scheduler: they live
    wherever the application put them). A heap scan, paid only by adapters whose framework is
    loaded; the class test is made once per type (an ABC's ``isinstance`` is ten times slower)."""
    kinds: dict[type, bool] = {}
    found = []
    for value in gc.get_objects():
        kind = type(value)
        matches = kinds.get(kind)
        if matches is None:
            matches = kinds[kind] = issubclass(kind, cls)
        if matches:
            found.append(value)
    return found


def namespace_values(modules: Mapping[str, ModuleType]) -> dict[int, object]:
    """What ``modules`` hold at top level, and inside their top-level lists, tuples and dicts
    (``METRICS = {"hits": Counter(...)}``), by id."""
    found: dict[int, object] = {}
    for module in modules.values():
        for value in list(vars(module).values()):
            found[id(value)] = value
            items = value.values() if type(value) is dict else value if type(value) in (list, tuple) else ()
            found.update((id(item), item) for item in list(items))
    return found


def owned_by(candidates: list[Any], modules: Mapping[str, ModuleType]) -> list[Any]:
    """Those of ``candidates`` (objects that ``modules`` hold) that no other module holds: made by
    these modules, not imported from one that a reload of them does not execute again."""
    if not candidates:
        return []
    wanted = {id(candidate) for candidate in candidates}
    # Top-level names only: ``from app.metrics import HITS`` binds one (a few ms for 800 modules).
    elsewhere = {
        id(value)
        for name, module in list(sys.modules.items())
        if name not in modules and isinstance(module, ModuleType)
        for value in list(vars(module).values())
        if id(value) in wanted
    }
    return [candidate for candidate in candidates if id(candidate) not in elsewhere]


def defined_in(function: object, modules: Mapping[str, ModuleType]) -> bool:
    """Whether ``function`` (or a bound method's function) is code of these very module objects:
    unlike ``declared_by``, a function of a newer module of the same name is not."""
    function = getattr(function, "__func__", function)
    namespace = getattr(function, "__globals__", None)
    return any(namespace is vars(module) for module in modules.values())


def declared_by(value: object, modules: Mapping[str, ModuleType]) -> bool:
    """Whether ``value`` is one of ``modules``, or a class, function or instance defined in one."""
    if isinstance(value, ModuleType):
        return modules.get(value.__name__) is value
    origin = getattr(value, "__module__", None) or type(value).__module__
    return origin in modules

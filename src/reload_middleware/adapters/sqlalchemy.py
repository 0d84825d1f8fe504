"""SQLAlchemy (and SQLModel, built on it): the tables and mapped classes that modules of the group
declared leave their ``MetaData`` and their registry before the new import; a rollback puts them
back. Without this, re-declaring a model on a ``MetaData`` that outlives the group (a ``Base`` in
an unchanged module, or ``SQLModel.metadata`` in site-packages) fails: "Table 'hero' is already
defined for this MetaData instance".

SQLAlchemy keeps every registry in a weak set (``mapperlib._mapper_registries``, private but
stable since 1.4): the registries are found there, not by scanning the heap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from . import declared_by

FRAMEWORK = "sqlalchemy"


def release(modules: Mapping[str, ModuleType]) -> Callable[[], None]:
    from sqlalchemy import MetaData

    released_classes, tables = _declared(modules)
    metadatas: dict[int, MetaData] = {id(table.metadata): table.metadata for table in tables}
    snapshots = {key: _snapshot(metadata) for key, metadata in metadatas.items()}
    for registry, manager in released_classes:
        _remove_class(registry, manager)
    for table in tables:
        table.metadata.remove(table)

    def undo() -> None:
        _put_back(released_classes, modules)
        for key, metadata in metadatas.items():
            _restore(metadata, snapshots[key])

    return undo


def _declared(modules: Mapping[str, ModuleType]) -> tuple[list[tuple[Any, Any]], list[Any]]:
    """The mapped classes ``modules`` declared, as (registry, class manager), and their tables
    (those of the classes, and the ``Table`` objects at module level)."""
    from sqlalchemy import Table
    from sqlalchemy.orm import mapperlib

    released_classes: list[tuple[Any, Any]] = []
    tables: list[Any] = [
        value for module in modules.values() for value in vars(module).values() if isinstance(value, Table)
    ]
    for registry in list(mapperlib._mapper_registries):
        for manager in list(registry._managers):
            if declared_by(manager.class_, modules):
                released_classes.append((registry, manager))
                table = getattr(manager.class_, "__table__", None)
                if isinstance(table, Table):
                    tables.append(table)
    return released_classes, tables


def _remove_class(registry: Any, manager: Any) -> None:
    from sqlalchemy.orm import clsregistry

    clsregistry._remove_class(manager.class_.__name__, manager.class_, registry._class_registry)
    registry._managers.pop(manager, None)


def _put_back(released_classes: list[tuple[Any, Any]], modules: Mapping[str, ModuleType]) -> None:
    """A rollback: what the discarded build declared goes, the released classes come back."""
    from sqlalchemy.orm import clsregistry

    registries = {id(registry): registry for registry, _ in released_classes}
    old = {manager for _, manager in released_classes}
    for registry in registries.values():
        for manager in list(registry._managers):
            if manager not in old and manager.class_.__module__ in modules:
                _remove_class(registry, manager)
    for registry, manager in released_classes:
        clsregistry._add_class(manager.class_.__name__, manager.class_, registry._class_registry)
        registry._managers[manager] = True


def _snapshot(metadata: Any) -> tuple[dict[str, Any], dict[Any, list[Any]], set[str]]:
    return (
        dict(metadata.tables),
        {key: list(value) for key, value in metadata._fk_memos.items()},
        set(metadata._schemas),
    )


def _restore(metadata: Any, snapshot: tuple[dict[str, Any], dict[Any, list[Any]], set[str]]) -> None:
    tables, fk_memos, schemas = snapshot
    dict.clear(metadata.tables)  # a FacadeDict: read-only through its own methods
    dict.update(metadata.tables, tables)
    metadata._fk_memos.clear()
    metadata._fk_memos.update(fk_memos)
    metadata._schemas = schemas

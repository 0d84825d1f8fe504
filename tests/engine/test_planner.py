"""Planning a reload, in-process: the changed modules, their importers (cycles together), the app
root; and for a changed module that cannot reload here, a sentence saying why, without it
blocking the others."""

from __future__ import annotations

import importlib
import os

import pytest
from apps import write_app
from harness import AppTree

from reload_middleware._engine import ModuleGraph, group_for

APP = {
    "__init__.py": "",
    "leaf.py": "VALUE = 1\n",
    "views.py": "from PKG.leaf import VALUE\n",
    "ping.py": "import PKG.pong\n",
    "pong.py": "import PKG.ping\n",
    "frozen.py": "__reloadable__ = False\nfrom PKG import pinned\n",
    "pinned.py": "VALUE = 2\n",
    "main.py": "import PKG.views\nimport PKG.ping\nimport PKG.frozen\n",
}


@pytest.fixture
def graph(imported_tree: AppTree) -> ModuleGraph:
    write_app(imported_tree, APP)
    importlib.import_module(f"{imported_tree.name}.main")
    root = str(imported_tree.root / imported_tree.name) + os.sep
    built = ModuleGraph(lambda path: path.startswith(root), lambda name: False)
    built.refresh()
    return built


def names(tree: AppTree, *short: str) -> frozenset[str]:
    return frozenset(f"{tree.name}.{name}" if name else tree.name for name in short)


def test_a_leaf_edit_reloads_the_leaf_its_importers_and_the_app_root(
    graph: ModuleGraph, imported_tree: AppTree
) -> None:
    grouping = group_for(
        graph, names(imported_tree, "leaf"), root_module=f"{imported_tree.name}.main", is_protected=lambda _: False
    )
    assert grouping.reloadable == names(imported_tree, "leaf")
    assert grouping.group == names(imported_tree, "leaf", "views", "main")
    assert grouping.restart_required == ()


def test_modules_that_import_each_other_reload_together(graph: ModuleGraph, imported_tree: AppTree) -> None:
    grouping = group_for(
        graph, names(imported_tree, "pong"), root_module=f"{imported_tree.name}.main", is_protected=lambda _: False
    )
    assert names(imported_tree, "ping", "pong", "main") <= grouping.group


def test_a_module_imported_by_one_that_is_not_reloadable_needs_a_restart_and_blocks_nothing_else(
    graph: ModuleGraph, imported_tree: AppTree
) -> None:
    grouping = group_for(
        graph,
        names(imported_tree, "pinned", "leaf"),
        root_module=f"{imported_tree.name}.main",
        is_protected=lambda _: False,
    )
    assert grouping.reloadable == names(imported_tree, "leaf")
    (reason,) = grouping.restart_required
    assert reason.startswith(f"{imported_tree.name}.pinned changed and is imported by {imported_tree.name}.frozen")
    assert reason.endswith("declared itself not reloadable: restart the server")


def test_nothing_reloadable_changed_plans_no_group(graph: ModuleGraph, imported_tree: AppTree) -> None:
    grouping = group_for(
        graph, names(imported_tree, "pinned"), root_module=f"{imported_tree.name}.main", is_protected=lambda _: False
    )
    assert (grouping.reloadable, grouping.group) == (frozenset(), frozenset())
    assert len(grouping.restart_required) == 1


def test_a_forced_reload_plans_every_reloadable_module(graph: ModuleGraph, imported_tree: AppTree) -> None:
    grouping = group_for(
        graph, frozenset(), root_module=f"{imported_tree.name}.main", is_protected=lambda _: False, force=True
    )
    reloadable = {name for name, tracked in graph.modules.items() if tracked.reloadable}
    assert grouping.group == frozenset(reloadable)
    assert f"{imported_tree.name}.frozen" not in grouping.group

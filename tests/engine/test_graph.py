from __future__ import annotations

import importlib
import os
import sys

from harness import AppTree

from reload_middleware._engine.graph import ModuleGraph
from reload_middleware._engine.imports import scan_imports


def test_scan_reads_every_import_form() -> None:
    source = """
import os, pkg.a as alias
from pkg.b import (
    one,
    two as deux,
)
from . import sibling
from .sub.leaf import thing  # a comment
from .. import cousin
if True:
    import pkg.indented
"""
    found = scan_imports(source, "pkg.sub.mod", is_package=False)
    assert {"os", "pkg.a", "pkg.b", "pkg.b.one", "pkg.b.two", "pkg.sub", "pkg.sub.sibling"} <= found
    assert {"pkg.sub.sub.leaf", "pkg.sub.sub.leaf.thing", "pkg", "pkg.cousin", "pkg.indented"} <= found
    assert "deux" not in str(found)


def test_relative_imports_of_a_package_resolve_against_itself() -> None:
    assert "pkg.child" in scan_imports("from .child import x\n", "pkg", is_package=True)


def _graph(tree: AppTree) -> ModuleGraph:
    root = str(tree.root / tree.name) + os.sep
    graph = ModuleGraph(lambda path: path.startswith(root), lambda name: name.endswith(".wrapper"))
    graph.refresh()
    return graph


def test_group_is_the_changed_module_plus_transitive_importers(imported_tree: AppTree) -> None:
    tree = imported_tree
    tree.write("__init__.py", "")
    tree.write("leaf.py", "X = 1\n")
    tree.write("mid.py", "from PKG.leaf import X\n")
    tree.write("top.py", "import PKG.mid\n")
    tree.write("other.py", "Y = 2\n")
    for name in ("top", "other"):
        importlib.import_module(f"{tree.name}.{name}")
    graph = _graph(tree)
    p = tree.name
    assert graph.affected({f"{p}.leaf"}) == {f"{p}.leaf", f"{p}.mid", f"{p}.top"}
    assert graph.affected({f"{p}.other"}) == {f"{p}.other"}


def test_a_cycle_reloads_together_from_either_side(imported_tree: AppTree) -> None:
    tree = imported_tree
    tree.write("__init__.py", "")
    tree.write("a.py", "from PKG import b\nNAME = 'a'\n")
    tree.write("b.py", "from PKG import a\nNAME = 'b'\n")
    tree.write("c.py", "from PKG.a import NAME\n")
    importlib.import_module(f"{tree.name}.c")
    graph = _graph(tree)
    p = tree.name
    both = {f"{p}.a", f"{p}.b", f"{p}.c"}
    assert graph.affected({f"{p}.a"}) == both
    assert graph.affected({f"{p}.b"}) == both


def test_a_changed_package_takes_its_submodules_along(imported_tree: AppTree) -> None:
    tree = imported_tree
    tree.write("__init__.py", "")
    tree.write("sub/__init__.py", "FLAG = 1\n")
    tree.write("sub/inner.py", "X = 1\n")
    importlib.import_module(f"{tree.name}.sub.inner")
    graph = _graph(tree)
    p = tree.name
    assert graph.affected({f"{p}.sub"}) == {f"{p}.sub", f"{p}.sub.inner"}
    # The import machinery binds `inner` on `sub`: that alone does not make `sub` an importer.
    assert graph.affected({f"{p}.sub.inner"}) == {f"{p}.sub.inner"}


def test_live_globals_catch_imports_the_source_does_not_show(imported_tree: AppTree) -> None:
    tree = imported_tree
    tree.write("__init__.py", "")
    tree.write("target.py", "def helper():\n    return 1\n")
    tree.write("dynamic.py", "import importlib\nmod = importlib.import_module('PKG.' + 'target')\n")
    importlib.import_module(f"{tree.name}.dynamic")
    graph = _graph(tree)
    assert f"{tree.name}.dynamic" in graph.affected({f"{tree.name}.target"})


def test_protected_and_opted_out_modules_are_marked(imported_tree: AppTree) -> None:
    tree = imported_tree
    tree.write("__init__.py", "")
    tree.write("wrapper.py", "")
    tree.write("pinned.py", "__reloadable__ = False\n")
    tree.write("plain.py", "")
    for name in ("wrapper", "pinned", "plain"):
        importlib.import_module(f"{tree.name}.{name}")
    graph = _graph(tree)
    reloadable = {name: tracked.reloadable for name, tracked in graph.modules.items()}
    p = tree.name
    assert reloadable == {p: True, f"{p}.wrapper": False, f"{p}.pinned": False, f"{p}.plain": True}


def test_a_refresh_catches_up_with_modules_imported_replaced_or_removed_since_the_last(
    imported_tree: AppTree,
) -> None:
    tree = imported_tree
    tree.write("__init__.py", "")
    tree.write("leaf.py", "X = 1\n")
    tree.write("mid.py", "X = 0\n")
    importlib.import_module(f"{tree.name}.mid")
    graph = _graph(tree)
    p = tree.name
    assert graph.affected({f"{p}.mid"}) == {f"{p}.mid"}
    assert graph.refresh() == []  # nothing new: nothing looked at again

    importlib.import_module(f"{tree.name}.leaf")  # imported lazily, after the first look
    tree.write("late.py", "from PKG.leaf import X\n")
    importlib.import_module(f"{tree.name}.late")
    assert {tracked.name for tracked in graph.refresh()} == {f"{p}.leaf", f"{p}.late"}
    assert graph.affected({f"{p}.leaf"}) == {f"{p}.leaf", f"{p}.late"}

    tree.write("mid.py", "from PKG.leaf import X\n")  # a new module object under the same name
    del sys.modules[f"{p}.mid"]
    importlib.invalidate_caches()
    importlib.import_module(f"{tree.name}.mid")
    assert [tracked.name for tracked in graph.refresh()] == [f"{p}.mid"]
    assert graph.affected({f"{p}.leaf"}) == {f"{p}.leaf", f"{p}.late", f"{p}.mid"}

    del sys.modules[f"{p}.late"]  # gone: no longer tracked, nor anyone's importer
    graph.refresh()
    assert f"{p}.late" not in graph.modules
    assert graph.affected({f"{p}.leaf"}) == {f"{p}.leaf", f"{p}.mid"}

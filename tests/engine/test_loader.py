from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

import pytest
from harness import AppTree

from reload_middleware import BuildError
from reload_middleware._engine.loader import load_group


def _write_package(tree: AppTree) -> None:
    tree.write("__init__.py", "")
    tree.write("leaf.py", "VALUE = 1\nREMOVED = 'here'\n")
    tree.write("mid.py", "from PKG.leaf import VALUE\n")
    tree.write("main.py", "from PKG import leaf\nfrom PKG.mid import VALUE\napp = (leaf, VALUE)\n")


def _load_main(tree: AppTree) -> object:
    return importlib.import_module(f"{tree.name}.main").app


def test_group_is_imported_as_fresh_module_objects(imported_tree: AppTree) -> None:
    tree = imported_tree
    _write_package(tree)
    p = tree.name
    old_leaf = importlib.import_module(f"{p}.main").leaf
    tree.write("leaf.py", "VALUE = 2\n")
    loaded = load_group({f"{p}.leaf", f"{p}.mid", f"{p}.main"}, lambda: _load_main(tree), [str(tree.path("leaf.py"))])

    new_leaf, value = loaded.app
    assert value == 2
    assert new_leaf is not old_leaf
    assert new_leaf is sys.modules[f"{p}.leaf"]
    assert not hasattr(new_leaf, "REMOVED")  # never patched in place
    assert old_leaf.VALUE == 1  # the old version is left intact for requests still running on it
    assert sys.modules[p].leaf is new_leaf
    assert loaded.old_modules[f"{p}.leaf"] is old_leaf


@pytest.mark.parametrize(
    ("broken_file", "broken_source", "error"),
    [
        ("mid.py", "from PKG.leaf import VALUE\ndef broken(:\n", SyntaxError),
        ("mid.py", "from PKG.leaf import VALUE\nraise RuntimeError('half-way')\n", RuntimeError),
        ("mid.py", "from PKG.leaf import MISSING\n", ImportError),
        ("main.py", "from PKG import leaf\nimport PKG.mid\nraise KeyError('late')\n", KeyError),
    ],
)
def test_failure_leaves_sys_modules_exactly_as_before(
    imported_tree: AppTree, broken_file: str, broken_source: str, error: type[Exception]
) -> None:
    tree = imported_tree
    _write_package(tree)
    p = tree.name
    importlib.import_module(f"{p}.main")
    before = dict(sys.modules)
    package_attributes = dict(vars(sys.modules[p]))

    tree.write("leaf.py", "VALUE = 2\nNEW = True\n")
    tree.write(broken_file, broken_source)
    with pytest.raises(BuildError) as info:
        load_group({f"{p}.leaf", f"{p}.mid", f"{p}.main"}, lambda: _load_main(tree), [str(tree.path("leaf.py"))])

    assert isinstance(info.value.__cause__, error)
    assert sys.modules.keys() == before.keys()
    assert all(sys.modules[name] is module for name, module in before.items())
    assert vars(sys.modules[p]) == package_attributes  # parent attributes point at the old modules again


def test_rollback_after_a_successful_import_restores_everything(imported_tree: AppTree) -> None:
    tree = imported_tree
    _write_package(tree)
    p = tree.name
    importlib.import_module(f"{p}.main")
    before = dict(sys.modules)
    leaf = sys.modules[f"{p}.leaf"]
    tree.write("extra.py", "X = 1\n")
    tree.write("leaf.py", "from PKG import extra\nVALUE = 3\n")
    loaded = load_group({f"{p}.leaf", f"{p}.mid", f"{p}.main"}, lambda: _load_main(tree), [str(tree.path("leaf.py"))])
    assert f"{p}.extra" in sys.modules

    loaded.rollback()  # what a failed lifespan startup of the new app does
    assert sys.modules == before
    assert sys.modules[p].leaf is leaf
    assert not hasattr(sys.modules[p], "extra")


def test_same_size_edit_within_one_second_is_not_served_from_stale_bytecode(
    imported_tree: AppTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    tree = imported_tree
    tree.write("__init__.py", "")
    path = tree.write("leaf.py", "VALUE = 'aaa'\n")
    stat = path.stat()

    def app() -> object:
        return importlib.import_module(f"{tree.name}.leaf").VALUE

    assert app() == "aaa"
    assert Path(importlib.util.cache_from_source(str(path))).exists()  # a .pyc exists to go stale
    for value in ("bbb", "ccc"):
        path.write_text(f"VALUE = '{value}'\n")
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same second, same size: the trap
        loaded = load_group({f"{tree.name}.leaf"}, app, [str(path)])
        assert loaded.app == value

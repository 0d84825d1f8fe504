"""The reload transaction in-process, without a server: plan, build, start, commit, swap, and the
exact rollback of a failed attempt, driven one attempt at a time as the worker thread drives it."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from harness import AppTree

from reload_middleware._config import Config
from reload_middleware._errors import Outcome
from reload_middleware._pipeline import AppVersion, Pipeline, load
from reload_middleware._pipeline.transaction import CollectionPause

APP = {
    "__init__.py": "",
    "leaf.py": 'VALUE = "one"\n',
    "other.py": 'OTHER = "unchanged"\n',
    "main.py": """
        from PKG import leaf, other


        async def app(scope, receive, send):
            pass


        app.value = leaf.VALUE
    """,
}


class _Runtime:
    """No lifespan and no warm-up; ``fail_start`` makes a version's start fail."""

    def __init__(self) -> None:
        self.fail_start = False
        self.stopped: list[int] = []

    def start(self, version: AppVersion) -> None:
        if self.fail_start:
            raise RuntimeError("lifespan startup failed")

    def warm_up(self, version: AppVersion, timeout: float) -> None:
        pass

    def stop(self, version: AppVersion) -> None:
        self.stopped.append(version.number)

    @staticmethod
    def adapt(app: Any) -> Any:
        return app


@pytest.fixture
def runtime() -> _Runtime:
    return _Runtime()


@pytest.fixture
def pipeline(imported_tree: AppTree, runtime: _Runtime) -> Iterator[Pipeline]:
    for name, source in APP.items():
        imported_tree.write(name, source)
    # Manual mode: nothing reacts to the test's writes but the attempts it runs; no drain wait.
    loaded = load(f"{imported_tree.name}.main:app", Config(watch=False, warmup=False), "a_wrapper_module")
    built = Pipeline(loaded, runtime, lambda number: None)
    yield built
    built.close()


def attempt(pipeline: Pipeline, *, force: bool = False) -> Outcome:
    """One attempt, run in this thread as the worker thread runs it."""
    queued = pipeline.queue.put(force=force, sweep=True)
    with pipeline.queue.condition:
        assert pipeline.queue.take() is queued
    pipeline.run(queued)
    outcome = queued.wait(timeout=0)
    assert outcome is not None
    return outcome


def modules_of(tree: AppTree) -> dict[str, ModuleType]:
    return {name: module for name, module in sys.modules.items() if name.startswith(tree.name)}


def test_nothing_changed_is_ok_and_the_same_version_serves_on(pipeline: Pipeline) -> None:
    outcome = attempt(pipeline)
    assert (outcome.ok, outcome.version) == (True, 1)
    assert pipeline.versions.current.number == 1


def test_an_edit_swaps_in_a_version_built_from_fresh_modules(pipeline: Pipeline, imported_tree: AppTree) -> None:
    name = imported_tree.name
    old_leaf, old_other = sys.modules[f"{name}.leaf"], sys.modules[f"{name}.other"]
    imported_tree.write("leaf.py", 'VALUE = "two"\n')
    outcome = attempt(pipeline)
    assert (outcome.ok, outcome.version) == (True, 2)
    assert set(outcome.reloaded) == {f"{name}.leaf", f"{name}.main"}
    assert pipeline.versions.current.app.value == "two"
    assert sys.modules[f"{name}.leaf"] is not old_leaf  # a fresh module object, never patched
    assert sys.modules[f"{name}.other"] is old_other  # not in the group: untouched
    pipeline.retire_ready()
    assert [version.number for version in pipeline.versions.live] == [2]


def test_a_broken_edit_changes_nothing_and_its_fix_reloads(pipeline: Pipeline, imported_tree: AppTree) -> None:
    before = modules_of(imported_tree)
    imported_tree.write("leaf.py", "VALUE = (\n")
    failed = attempt(pipeline)
    assert (failed.ok, failed.version) == (False, 1)
    assert failed.error is not None
    assert failed.error.type == "SyntaxError"
    assert modules_of(imported_tree) == before  # the very same module objects
    assert pipeline.status()["failures"] == 1
    imported_tree.write("leaf.py", 'VALUE = "fixed"\n')
    fixed = attempt(pipeline)
    assert (fixed.ok, fixed.version) == (True, 2)
    assert pipeline.versions.current.app.value == "fixed"


def test_a_version_that_fails_to_start_is_rolled_back(
    pipeline: Pipeline, imported_tree: AppTree, runtime: _Runtime
) -> None:
    before = modules_of(imported_tree)
    imported_tree.write("leaf.py", 'VALUE = "two"\n')
    runtime.fail_start = True
    outcome = attempt(pipeline)
    assert (outcome.ok, outcome.version) == (False, 1)
    assert outcome.error is not None
    assert "lifespan startup failed" in outcome.error.message
    assert modules_of(imported_tree) == before
    assert runtime.stopped == [2]  # whatever of it had started is stopped
    runtime.fail_start = False
    assert attempt(pipeline).ok  # the edit is still pending, and goes in now


def test_a_forced_reload_rebuilds_every_module_though_nothing_changed(
    pipeline: Pipeline, imported_tree: AppTree
) -> None:
    outcome = attempt(pipeline, force=True)
    assert (outcome.ok, outcome.version) == (True, 2)
    name = imported_tree.name
    assert {f"{name}.leaf", f"{name}.other", f"{name}.main"} <= set(outcome.reloaded)


def test_collection_is_paused_during_an_attempt_and_left_off_if_the_app_turned_it_off() -> None:
    assert gc.isenabled()
    with CollectionPause():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with CollectionPause():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()

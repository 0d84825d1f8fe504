"""The reload transaction in-process, without a server: plan, build, start, commit, swap, and the
exact rollback of a failed attempt, driven one attempt at a time as the worker thread drives it."""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import anyio
import pytest
from apps import write_app
from harness import AppTree

from reload_middleware._config import Config
from reload_middleware._errors import Outcome
from reload_middleware._pipeline import AppVersion, Pipeline, Visit, load
from reload_middleware._pipeline.transaction import CollectionPause
from reload_middleware._pipeline.versions import Stopping
from reload_middleware._types import Message

APP = {
    "__init__.py": "",
    "leaf.py": 'VALUE = "one"\n',
    "other.py": 'OTHER = "unchanged"\n',
    "main.py": """
        import gc

        from PKG import leaf, other

        BODY = leaf.VALUE.encode()


        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": BODY})


        app.collecting = gc.isenabled()  # while this module was imported
    """,
}


class _Runtime:
    """No lifespan and no warm-up; ``fail_start`` makes a version's start fail."""

    def __init__(self) -> None:
        self.fail_start = False
        self.started: list[int] = []
        self.stopped: list[int] = []

    def start(self, version: AppVersion, timeout: float) -> None:
        self.started.append(version.number)
        if self.fail_start:
            raise RuntimeError("lifespan startup failed")

    def warm_up(self, version: AppVersion, timeout: float) -> None:
        pass

    def stop(self, version: AppVersion) -> None:
        self.stopped.append(version.number)

    def stop_soon(self, version: AppVersion) -> Stopping:
        self.stop(version)
        return Stopping.finished()

    @staticmethod
    def adapt(app: Any) -> Any:
        return app


@pytest.fixture
def runtime() -> _Runtime:
    return _Runtime()


@pytest.fixture
def pipeline(imported_tree: AppTree, runtime: _Runtime) -> Iterator[Pipeline]:
    before = set(threading.enumerate())
    write_app(imported_tree, APP)
    # Manual mode: nothing reacts to the test's writes but the attempts it runs; no drain wait.
    loaded = load(f"{imported_tree.name}.main:app", Config(watch=False, warmup=False), "a_wrapper_module")
    built = Pipeline(loaded, runtime, lambda number: None)
    yield built
    built.close()
    # The worker, the watcher, the leak checker: whatever the pipeline started has ended.
    started = [thread for thread in threading.enumerate() if thread not in before]
    for thread in started:
        thread.join(5)
    assert [thread.name for thread in started if thread.is_alive()] == []


def attempt(pipeline: Pipeline, *, force: bool = False) -> Outcome:
    """One attempt, run in this thread as the worker thread runs it."""
    queued = pipeline.queue.put(force=force, sweep=True)
    with pipeline.queue.condition:
        assert pipeline.queue.take() is queued
    pipeline.run(queued)
    outcome = queued.wait(timeout=0)
    assert outcome is not None
    return outcome


def answer(app: Any) -> bytes:
    """The body ``app`` answers to ``GET /``."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    anyio.run(app, scope, receive, send)
    return b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")


def modules_of(tree: AppTree) -> dict[str, ModuleType]:
    return {name: module for name, module in sys.modules.items() if name.startswith(tree.name)}


def same_objects(now: dict[str, ModuleType], before: dict[str, ModuleType]) -> bool:
    return now.keys() == before.keys() and all(now[name] is before[name] for name in now)


def test_nothing_changed_is_ok_and_the_same_version_serves_on(pipeline: Pipeline, runtime: _Runtime) -> None:
    serving = pipeline.versions.current
    outcome = attempt(pipeline)
    assert outcome.as_dict() == {
        "ok": True,
        "version": 1,
        "reloaded": [],
        "duration_ms": 0.0,
        "error": None,
        "restart_required": [],
    }
    assert pipeline.versions.current is serving
    assert runtime.started == []  # nothing was built
    assert answer(serving.app) == b"one"


def test_an_edit_swaps_in_a_version_built_from_fresh_modules(
    pipeline: Pipeline, imported_tree: AppTree, runtime: _Runtime
) -> None:
    name = imported_tree.name
    first = pipeline.versions.current
    old_leaf, old_other = sys.modules[f"{name}.leaf"], sys.modules[f"{name}.other"]
    imported_tree.write("leaf.py", 'VALUE = "two"\n')
    outcome = attempt(pipeline)
    report = outcome.as_dict()
    assert {key: report[key] for key in ("ok", "version", "reloaded", "error")} == {
        "ok": True,
        "version": 2,
        "reloaded": sorted([f"{name}.leaf", f"{name}.main"]),
        "error": None,
    }
    assert pipeline.versions.current.number == 2
    assert answer(pipeline.versions.current.app) == b"two"
    assert sys.modules[f"{name}.leaf"] is not old_leaf  # a fresh module object, never patched
    assert sys.modules[f"{name}.leaf"].VALUE == "two"
    assert sys.modules[f"{name}.other"] is old_other  # not in the group: untouched
    assert old_leaf.VALUE == "one"  # the old version's module is left as it was
    # Nothing was in flight on version 1: it retired within the attempt.
    assert (runtime.started, runtime.stopped) == ([2], [1])
    assert first.phase.value == "retired"
    assert [version.number for version in pipeline.versions.live] == [2]
    assert pipeline.status()["reloads"] == 1


def test_the_old_version_drains_while_a_request_is_on_it_then_retires(
    pipeline: Pipeline, imported_tree: AppTree, runtime: _Runtime
) -> None:
    first = pipeline.versions.current
    old_leaf = sys.modules[f"{imported_tree.name}.leaf"]
    request = Visit(first)
    request.streaming = True  # answering: it does not hold the swap back, but keeps its version
    imported_tree.write("leaf.py", 'VALUE = "two"\n')
    assert attempt(pipeline).ok
    assert pipeline.versions.current.number == 2
    assert [state["state"] for state in pipeline.versions.describe()] == ["draining", "serving"]
    assert first.replaced[f"{imported_tree.name}.leaf"] is old_leaf  # what it retires with
    assert runtime.stopped == []
    pipeline.tend()
    assert pipeline.versions.draining() == [first]  # still busy
    request.end()
    pipeline.tend()
    assert first.phase.value == "retired"
    assert runtime.stopped == [1]
    assert [version.number for version in pipeline.versions.live] == [2]


def test_a_broken_edit_changes_nothing_and_its_fix_reloads(pipeline: Pipeline, imported_tree: AppTree) -> None:
    first = pipeline.versions.current
    before = modules_of(imported_tree)
    imported_tree.write("leaf.py", "VALUE = (\n")
    failed = attempt(pipeline)
    assert (failed.ok, failed.version, failed.reloaded) == (False, 1, ())
    assert failed.error is not None
    assert failed.error.type == "SyntaxError"
    assert failed.error.file == str(imported_tree.path("leaf.py"))
    assert failed.as_dict()["error"] is not None
    assert same_objects(modules_of(imported_tree), before)  # the very same module objects
    assert pipeline.versions.current is first
    assert answer(first.app) == b"one"
    status = pipeline.status()
    assert (status["failures"], status["reloads"], status["last_error"]["resolved"]) == (1, 0, False)
    imported_tree.write("leaf.py", 'VALUE = "fixed"\n')
    fixed = attempt(pipeline)
    assert (fixed.ok, fixed.version) == (True, 2)
    assert answer(pipeline.versions.current.app) == b"fixed"
    status = pipeline.status()
    assert (status["failures"], status["reloads"], status["last_error"]["resolved"]) == (1, 1, True)


def test_a_version_that_fails_to_start_is_rolled_back(
    pipeline: Pipeline, imported_tree: AppTree, runtime: _Runtime
) -> None:
    first = pipeline.versions.current
    before = modules_of(imported_tree)
    imported_tree.write("leaf.py", 'VALUE = "two"\n')
    runtime.fail_start = True
    outcome = attempt(pipeline)
    assert (outcome.ok, outcome.version) == (False, 1)
    assert outcome.error is not None
    assert "lifespan startup failed" in outcome.error.message
    assert same_objects(modules_of(imported_tree), before)
    assert pipeline.versions.current is first
    assert runtime.stopped == [2]  # whatever of it had started is stopped
    runtime.fail_start = False
    retried = attempt(pipeline)  # the edit is still pending, and goes in now
    assert (retried.ok, retried.version) == (True, 2)
    assert answer(pipeline.versions.current.app) == b"two"


def test_a_forced_reload_rebuilds_every_module_though_nothing_changed(
    pipeline: Pipeline, imported_tree: AppTree
) -> None:
    name = imported_tree.name
    old_other = sys.modules[f"{name}.other"]
    outcome = attempt(pipeline, force=True)
    assert (outcome.ok, outcome.version) == (True, 2)
    assert {f"{name}.leaf", f"{name}.other", f"{name}.main"} <= set(outcome.reloaded)
    assert sys.modules[f"{name}.other"] is not old_other
    assert answer(pipeline.versions.current.app) == b"one"


def test_an_attempt_asked_for_runs_in_the_worker_thread_and_its_outcome_is_waited_for(
    pipeline: Pipeline, imported_tree: AppTree
) -> None:
    imported_tree.write("leaf.py", 'VALUE = "two"\n')
    outcome = pipeline.request(sweep=True).wait(timeout=10)
    assert outcome is not None
    assert (outcome.ok, outcome.version) == (True, 2)
    assert pipeline.worker.started
    assert answer(pipeline.versions.current.app) == b"two"


@pytest.mark.parametrize("collecting", [True, False], ids=["collection on", "collection off"])
def test_collection_is_paused_during_a_reload_and_resumed_after_it_unless_it_was_off(
    pipeline: Pipeline, imported_tree: AppTree, collecting: bool
) -> None:
    imported_tree.write("leaf.py", 'VALUE = "two"\n')
    if not collecting:
        gc.disable()  # the app turned it off
    try:
        assert attempt(pipeline).ok
        assert gc.isenabled() is collecting
    finally:
        gc.enable()
    assert pipeline.versions.current.app.collecting is False  # the build ran without collection


def test_a_collection_pause_ends_once_and_leaves_collection_off_if_the_app_turned_it_off() -> None:
    assert gc.isenabled()
    with CollectionPause() as pause:
        assert not gc.isenabled()
        pause.end()  # the held-back requests are answered: collection may run again
        assert gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with CollectionPause():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_in_watch_mode_the_old_versions_computing_requests_end_before_the_build(
    imported_tree: AppTree, runtime: _Runtime
) -> None:
    # The build releases shared registries (an ORM's mappers, plugins, logging handlers) that a
    # request still computing on the old version may be using: it ends first.
    write_app(imported_tree, APP)
    config = Config(watch=True, warmup=False, drain_timeout=10)
    pipeline = Pipeline(load(f"{imported_tree.name}.main:app", config, "a_wrapper_module"), runtime, lambda n: None)
    request = Visit(pipeline.versions.current)  # computing
    ended: list[float] = []

    def finish() -> None:
        time.sleep(0.3)
        ended.append(time.monotonic())
        request.end()

    finisher = threading.Thread(target=finish)
    finisher.start()
    try:
        imported_tree.write("leaf.py", 'import time\n\nBUILT_AT = time.monotonic()\nVALUE = "two"\n')
        assert attempt(pipeline).ok
        assert ended[0] <= sys.modules[f"{imported_tree.name}.leaf"].BUILT_AT
    finally:
        finisher.join(5)
        pipeline.close()


def test_in_watch_mode_a_request_computing_past_half_the_build_timeout_does_not_hold_the_build(
    imported_tree: AppTree, runtime: _Runtime
) -> None:
    # A long-poll on the old version: those waiting at the gate get the new version once it has
    # built, not after build_timeout (guarantee 1); the long-poll finishes on the old version.
    write_app(imported_tree, APP)
    config = Config(watch=True, warmup=False, build_timeout=0.4, drain_timeout=10)
    pipeline = Pipeline(load(f"{imported_tree.name}.main:app", config, "a_wrapper_module"), runtime, lambda n: None)
    long_poll = Visit(pipeline.versions.current)
    try:
        imported_tree.write("leaf.py", 'VALUE = "two"\n')
        started = time.monotonic()
        outcome = attempt(pipeline)
        assert outcome.ok
        assert time.monotonic() - started < 5  # not drain_timeout (10 s): a share of build_timeout
        assert pipeline.versions.current.number == 2
        assert long_poll.version.number == 1  # still running, on the version it started on
    finally:
        long_poll.end()
        pipeline.close()

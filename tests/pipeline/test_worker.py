"""The pipeline's threads, in-process: started once, stopped by close(), and gone with a pipeline
nobody holds any more."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator

import pytest
from harness import AppTree, wait_until

from reload_middleware._config import Config
from reload_middleware._pipeline import NoLifespan, Pipeline, load
from reload_middleware._pipeline.worker import WORKER_THREAD
from reload_middleware._watch.watcher import WATCHER_THREAD


@pytest.fixture
def tree_app(imported_tree: AppTree) -> str:
    imported_tree.write("__init__.py", "")
    imported_tree.write("main.py", "async def app(scope, receive, send):\n    pass\n")
    return f"{imported_tree.name}.main:app"


def ours() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("reload-middleware")]


def pipeline_for(import_string: str, *, watch: bool = True) -> Pipeline:
    return Pipeline(load(import_string, Config(watch=watch), "a_wrapper_module"), NoLifespan(), lambda number: None)


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    before = set(ours())
    yield
    wait_until(lambda: set(ours()) <= before)


def test_starting_twice_starts_one_worker_and_one_watcher(tree_app: str) -> None:
    pipeline = pipeline_for(tree_app)
    started: list[int] = []
    pipeline.on_start(lambda: started.append(1))
    try:
        pipeline.start()
        pipeline.start()
        assert pipeline.worker.started
        assert [thread.name for thread in ours()].count(WORKER_THREAD) == 1
        assert pipeline.worker.watcher is not None
        wait_until(lambda: pipeline.status()["watching"])
        assert started == [1]  # a start hook runs once
    finally:
        pipeline.close()
    assert not pipeline.worker.started


def test_a_request_starts_the_threads_and_the_worker_answers_it(tree_app: str) -> None:
    pipeline = pipeline_for(tree_app, watch=False)
    try:
        outcome = pipeline.request(sweep=True).wait(timeout=10)
        assert outcome is not None
        assert (outcome.ok, outcome.version) == (True, 1)  # nothing changed
    finally:
        pipeline.close()


def test_a_pipeline_nobody_holds_stops_its_threads(tree_app: str) -> None:
    before = set(ours())
    pipeline = pipeline_for(tree_app)
    pipeline.start()
    wait_until(lambda: WATCHER_THREAD in [thread.name for thread in set(ours()) - before])
    started = set(ours()) - before
    gone = weakref.ref(pipeline)
    del pipeline
    gc.collect()
    assert gone() is None  # its threads held it only weakly
    wait_until(lambda: not any(thread.is_alive() for thread in started))

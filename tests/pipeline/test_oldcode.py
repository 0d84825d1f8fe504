"""Old code at run time: threads and callbacks that run a retired version's code are found."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from reload_middleware._engine.reads import ReadRecorder
from reload_middleware._handover import keep
from reload_middleware._pipeline.leaks import Holder
from reload_middleware._pipeline.oldcode import OldCode, Sighting

TICKER = """
import threading

stop = threading.Event()
ticks = []


def tick():
    ticks.append(1)


def loop():
    while not stop.wait(0.005):
        tick()
"""


@pytest.fixture
def sightings() -> list[Sighting]:
    return []


@pytest.fixture
def old_code(sightings: list[Sighting]) -> Iterator[OldCode]:
    tracker = OldCode(sightings.append)
    yield tracker
    tracker.close()


def imported(directory: Path, name: str, source: str, old_code: OldCode) -> ModuleType:
    """``source`` imported as module ``name`` the way a build imports it (its execution recorded)."""
    path = directory / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    with ReadRecorder() as recorder:
        spec.loader.exec_module(module)
    old_code.executed([module], recorder.module_code)
    return module


def started(module: ModuleType) -> threading.Thread:
    thread = threading.Thread(target=module.loop, name="ticker", daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def ticking(module: ModuleType, start: Callable[[], threading.Thread] | None = None) -> Iterator[None]:
    """``module``'s loop runs in a thread (``start`` makes it, ``started`` by default) until the end."""
    thread = start() if start is not None else started(module)
    try:
        yield
    finally:
        module.stop.set()
        thread.join(5)


def test_a_thread_that_runs_a_retired_version_is_found_and_reported_once(
    tmp_path: Path, old_code: OldCode, sightings: list[Sighting]
) -> None:
    module = imported(tmp_path, "ticker_a", TICKER, old_code)
    with ticking(module):
        assert old_code.in_threads() == []  # serving: its code runs legitimately
        old_code.retire(1, {"ticker_a": module}, busy=lambda: False)
        found = old_code.in_threads()
        assert [(s.version, s.function, s.thread) for s in found] == [(1, "ticker_a.loop", "ticker")]
        assert found[0].file == str(tmp_path / "ticker_a.py")
        assert old_code.in_threads() == found  # still running: still found ...
        assert [s.function for s in sightings if s.thread == "ticker"] == ["ticker_a.loop"]  # ... reported once
    assert old_code.in_threads() == []


def test_a_retired_version_with_requests_in_flight_may_still_run_its_code(
    tmp_path: Path, old_code: OldCode, sightings: list[Sighting]
) -> None:
    module = imported(tmp_path, "ticker_b", TICKER, old_code)
    with ticking(module):
        old_code.retire(1, {"ticker_b": module}, busy=lambda: True)
        assert old_code.in_threads() == []


def test_a_kept_thread_runs_on_unreported(tmp_path: Path, old_code: OldCode, sightings: list[Sighting]) -> None:
    module = imported(tmp_path, "ticker_c", TICKER, old_code)
    with ticking(module, lambda: keep(f"ticker-{tmp_path.name}", lambda: started(module))):
        old_code.retire(1, {"ticker_c": module}, busy=lambda: False)
        assert old_code.in_threads() == []


def test_a_new_version_of_the_same_source_is_not_old_code(tmp_path: Path, old_code: OldCode) -> None:
    first = imported(tmp_path, "same", TICKER, old_code)
    second = imported(tmp_path, "same", TICKER, old_code)
    old_code.retire(1, {"same": first}, busy=lambda: False)
    # Equal code objects (same source), but only the retired version's are old.
    assert first.tick.__code__ == second.tick.__code__
    assert old_code.is_retired(first.tick.__code__)
    assert not old_code.is_retired(second.tick.__code__)


def test_a_module_imported_unrecorded_is_known_by_its_functions(tmp_path: Path, old_code: OldCode) -> None:
    source = "class Handler:\n    def handle(self):\n        return 1\n\n\ndef helper():\n    pass\n"
    (tmp_path / "lazy.py").write_text(source)
    spec = importlib.util.spec_from_file_location("lazy", tmp_path / "lazy.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # no recorder: a request imported it lazily
    old_code.retire(1, {"lazy": module}, busy=lambda: False)
    assert old_code.is_retired(module.helper.__code__)
    assert old_code.is_retired(module.Handler.handle.__code__)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is Python 3.12+: 3.11 looks at thread stacks")
def test_a_callback_a_library_holds_is_reported_when_it_runs(
    tmp_path: Path, old_code: OldCode, sightings: list[Sighting]
) -> None:
    module = imported(tmp_path, "callback", "def on_event():\n    return 'old'\n", old_code)
    held = [module.on_event]  # as a library's global registry would
    old_code.retire(1, {"callback": module}, busy=lambda: False)
    assert sightings == []
    for _ in range(3):
        assert held[0]() == "old"
    assert [(s.version, s.function, s.line) for s in sightings] == [(1, "callback.on_event", 1)]


def test_code_of_a_retired_version_that_a_library_global_holds_is_reported_with_the_chain(
    tmp_path: Path, old_code: OldCode, sightings: list[Sighting]
) -> None:
    module = imported(tmp_path, "held_ticker", TICKER, old_code)
    old_code.retire(1, {"held_ticker": module}, lambda: False)
    callbacks = [module.tick]
    old_code.held(1, Holder("library.registry", "CALLBACKS", (callbacks, module.tick), "held_ticker"))
    [sighting] = sightings
    assert (sighting.version, sighting.function, sighting.thread) == (1, "held_ticker.tick", "")
    assert (
        sighting.held_by
        == "library.registry.CALLBACKS -> list -> function held_ticker.tick -> namespace of retired held_ticker"
    )
    assert sighting.line == module.tick.__code__.co_firstlineno
    old_code.held(1, Holder("library.registry", "CALLBACKS", (callbacks, module.tick), "held_ticker"))
    assert len(sightings) == 1  # once


def test_a_retired_versions_data_or_a_threads_copy_of_the_excepthook_held_is_no_old_code(
    tmp_path: Path, old_code: OldCode, sightings: list[Sighting]
) -> None:
    module = imported(tmp_path, "held_data", TICKER, old_code)
    old_code.retire(1, {"held_data": module}, lambda: False)
    old_code.held(1, Holder("library.cache", "VALUES", (module.ticks,), "held_data"))
    thread = threading.Thread(target=print)  # made now: it keeps sys.excepthook as it is
    copy = thread._invoke_excepthook  # type: ignore[attr-defined]
    old_code.held(1, Holder("threading", "_active", (thread, copy, module.tick), "held_data"))
    assert sightings == []


def test_held_code_already_seen_running_is_not_reported_again(
    tmp_path: Path, old_code: OldCode, sightings: list[Sighting]
) -> None:
    module = imported(tmp_path, "seen_ticker", TICKER, old_code)
    with ticking(module):
        while not module.ticks:  # its loop runs
            time.sleep(0.005)
        old_code.retire(1, {"seen_ticker": module}, lambda: False)
        [running] = old_code.in_threads()
    function = getattr(module, running.function.rpartition(".")[2])  # the loop, or the tick it calls
    seen = list(sightings)  # (on 3.12+, sys.monitoring may have seen the tick run too)
    old_code.held(1, Holder("threading", "_active", (function,), "seen_ticker"))
    assert sightings == seen
    assert all(sighting.thread == "ticker" for sighting in sightings)


def test_a_kept_thread_that_ended_hides_no_other_threads_old_code(
    tmp_path: Path, old_code: OldCode, sightings: list[Sighting]
) -> None:
    ended = threading.Thread(target=print, args=("",), name="ended")
    keep(f"ended-{tmp_path.name}", lambda: ended)
    ended.start()
    ended.join()  # its target is gone: only threading's own methods are left on it
    module = imported(tmp_path, "ticker_e", TICKER, old_code)
    with ticking(module):
        while not module.ticks:
            time.sleep(0.005)
        old_code.retire(1, {"ticker_e": module}, busy=lambda: False)
        assert [sighting.thread for sighting in old_code.in_threads()] == ["ticker"]

"""Retirement, in-process: an idle draining version retires (lifespan stopped, its modules'
``on_retire`` hooks run), a busy one at ``retire_timeout`` with its connections closed, and the
oldest one at ``max_versions``."""

from __future__ import annotations

import atexit
import dataclasses
import logging
import threading
import time
import types
from collections.abc import Callable, Iterator

import pytest
from visits import LongLived

from reload_middleware._config import Config
from reload_middleware._pipeline.leaks import SENTINEL_NAME, LeakTracker
from reload_middleware._pipeline.oldcode import OldCode, Sighting
from reload_middleware._pipeline.retire import Retirer
from reload_middleware._pipeline.versions import AppVersion, Phase, Stopping, VersionSet


def _unexpected(sighting: Sighting) -> None:
    raise AssertionError(f"no old code runs in these tests: {sighting}")


class _Runtime:
    """Records which versions it was asked to stop; their shutdown fails if told to, or runs on
    until ``finish()`` if it hangs."""

    def __init__(self, fail: bool = False, hang: bool = False) -> None:
        self.stopped: list[int] = []
        self._fail = fail
        self._hang = hang
        self.pending: list[Stopping] = []

    def stop_soon(self, version: AppVersion) -> Stopping:
        self.stopped.append(version.number)
        stopping = Stopping()
        if self._fail:
            stopping.error = "lifespan shutdown failed"
        if self._hang:
            self.pending.append(stopping)
        else:
            stopping.done.set()
        return stopping

    def finish(self) -> None:
        for stopping in self.pending:
            stopping.error = "lifespan shutdown did not finish within 30 s"
            stopping.done.set()


def retirer(
    versions: VersionSet,
    runtime: _Runtime,
    leaks: LeakTracker,
    config: Config | None = None,
    failures: list[tuple[int, str]] | None = None,
) -> Retirer:
    reported = failures if failures is not None else []
    return Retirer(
        versions,
        runtime,
        leaks,
        config or Config(),
        OldCode(_unexpected),
        lambda number, message: reported.append((number, message)),
    )


@pytest.fixture
def leaks() -> Iterator[LeakTracker]:
    before = set(threading.enumerate())
    tracker = LeakTracker(delay=60)  # the leak check itself is not under test here
    yield tracker
    tracker.close()
    started = [thread for thread in threading.enumerate() if thread not in before]  # its checker thread
    for thread in started:
        thread.join(5)
    assert [thread.name for thread in started if thread.is_alive()] == []


def module_with_hook(name: str, calls: list[str]) -> types.ModuleType:
    """A module of a version whose import registered an ``on_retire`` hook."""
    module = types.ModuleType(name)
    module.CALLS = calls  # type: ignore[attr-defined]
    exec("from reload_middleware import on_retire\non_retire(lambda: CALLS.append(__name__))\n", vars(module))
    return module


def swapped(retire_timeout: float = 60) -> tuple[VersionSet, AppVersion, AppVersion, list[str]]:
    """Version 1 replaced by version 2; version 1 owns a module with a hook."""
    calls: list[str] = []
    first, second = AppVersion(1, object(), None), AppVersion(2, object(), None)
    versions = VersionSet(first)
    versions.swap(second, {"pkg.leaf": module_with_hook("pkg.leaf", calls)}, retire_timeout)
    return versions, first, second, calls


def test_an_idle_draining_version_retires_and_its_hooks_run(leaks: LeakTracker) -> None:
    versions, first, _, calls = swapped()
    runtime = _Runtime()
    retirer(versions, runtime, leaks).retire_ready()
    assert runtime.stopped == [1]
    assert calls == ["pkg.leaf"]
    assert first.phase is Phase.RETIRED
    assert first.app is None  # the old module graph can go
    assert versions.live == [versions.current]


def test_a_retired_version_hands_its_modules_to_the_leak_tracker_and_forgets_them(leaks: LeakTracker) -> None:
    versions, first, _, _ = swapped()
    module = first.replaced["pkg.leaf"]
    retirer(versions, _Runtime(), leaks).retire_ready()
    assert SENTINEL_NAME in vars(module)  # watched from now on: a leak would be reported
    assert first.replaced == {}


def test_a_retired_version_unregisters_the_exit_callbacks_its_build_registered(
    leaks: LeakTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    versions, first, _, _ = swapped()

    def callback() -> None:  # it would hold version 1 alive until the process exits
        pass

    unregistered: list[Callable[..., object]] = []
    unregister = atexit.unregister

    def recording(function: Callable[..., object]) -> None:
        unregistered.append(function)
        unregister(function)

    monkeypatch.setattr(atexit, "unregister", recording)
    atexit.register(callback)
    first.exit_callbacks = [callback]
    try:
        retirer(versions, _Runtime(), leaks).retire_ready()
    finally:
        unregister(callback)
    assert unregistered == [callback]
    assert first.exit_callbacks == []


def test_a_busy_version_waits_for_retire_timeout_then_its_connections_are_closed(
    leaks: LeakTracker, caplog: pytest.LogCaptureFixture
) -> None:
    versions, first, _, calls = swapped(retire_timeout=60)
    stream = LongLived(first)
    runtime = _Runtime()
    retiring = retirer(versions, runtime, leaks, Config(retire_timeout=60))
    retiring.retire_ready()
    assert versions.draining() == [first]  # still busy, and its time is not up
    assert (calls, runtime.stopped, stream.closed) == ([], [], False)
    first.retire_by = time.monotonic()  # its time is up
    with caplog.at_level(logging.WARNING):
        retiring.retire_ready()
    assert stream.closed
    assert first.phase is Phase.RETIRED
    assert (calls, runtime.stopped) == (["pkg.leaf"], [1])
    assert "version 1 still has 1 connection(s)" in caplog.text


def test_at_max_versions_the_oldest_draining_version_goes(leaks: LeakTracker) -> None:
    versions, first, second, _ = swapped()
    stream = LongLived(first)  # a websocket that would hold version 1 for retire_timeout
    retiring = retirer(versions, _Runtime(), leaks, dataclasses.replace(Config(), max_versions=2))
    retiring.make_room()
    assert stream.closed
    assert first.phase is Phase.RETIRED
    assert versions.live == [second]


def test_below_max_versions_making_room_retires_nothing(leaks: LeakTracker) -> None:
    versions, first, second, calls = swapped()
    stream = LongLived(first)
    retirer(versions, _Runtime(), leaks, dataclasses.replace(Config(), max_versions=3)).make_room()
    assert not stream.closed
    assert versions.live == [first, second]
    assert calls == []


def test_a_failing_lifespan_shutdown_is_logged_and_the_version_retires_all_the_same(
    leaks: LeakTracker, caplog: pytest.LogCaptureFixture
) -> None:
    versions, first, _, calls = swapped()
    failures: list[tuple[int, str]] = []
    with caplog.at_level(logging.WARNING):
        retirer(versions, _Runtime(fail=True), leaks, failures=failures).retire_ready()
    assert "lifespan shutdown of retired version 1 failed" in caplog.text
    assert failures == [(1, "lifespan shutdown failed")]  # for the status
    assert calls == ["pkg.leaf"]
    assert first.phase is Phase.RETIRED


def test_a_hung_lifespan_shutdown_holds_nothing_back_and_the_version_retires_when_it_ends(
    leaks: LeakTracker,
) -> None:
    versions, _, second, calls = swapped()
    runtime = _Runtime(hang=True)
    failures: list[tuple[int, str]] = []
    retiring = retirer(versions, runtime, leaks, dataclasses.replace(Config(), max_versions=2), failures)
    started = time.monotonic()
    retiring.retire_ready()
    retiring.make_room()  # the next reload: it does not wait for the shutdown either
    retiring.retire_ready(wait=5)  # nor does the next reload's answer: it was asked to stop already
    assert time.monotonic() - started < 1  # not the shutdown's limit (startup_timeout, 30 s)
    states = [version.describe()["state"] for version in versions.live]
    assert (runtime.stopped, calls, states) == ([1], [], ["stopping", "serving"])
    runtime.finish()  # it ran past its limit
    retiring.retire_ready()
    assert (calls, versions.live) == (["pkg.leaf"], [second])
    assert failures == [(1, "lifespan shutdown did not finish within 30 s")]

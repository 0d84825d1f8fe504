"""Retirement, in-process: an idle draining version retires (lifespan stopped, its modules'
``on_retire`` hooks run), a busy one at ``retire_timeout`` with its connections closed, and the
oldest one at ``max_versions``."""

from __future__ import annotations

import dataclasses
import logging
import time
import types
from collections.abc import Iterator

import pytest

from reload_middleware._config import Config
from reload_middleware._pipeline.leaks import LeakTracker
from reload_middleware._pipeline.retire import Retirer
from reload_middleware._pipeline.versions import AppVersion, Phase, VersionSet, Visit


class _Runtime:
    """Records which versions it was asked to stop; fails if told to."""

    def __init__(self, fail: bool = False) -> None:
        self.stopped: list[int] = []
        self._fail = fail

    def stop(self, version: AppVersion) -> None:
        self.stopped.append(version.number)
        if self._fail:
            raise RuntimeError("lifespan shutdown failed")


class _Stream(Visit):
    __slots__ = ("closed",)

    def __init__(self, serving: AppVersion) -> None:
        self.closed = False
        super().__init__(serving, streaming=True)
        self.long_lived = True

    def close(self) -> None:
        self.closed = True
        self.end()


@pytest.fixture
def leaks() -> Iterator[LeakTracker]:
    tracker = LeakTracker(delay=60)  # the leak check itself is not under test here
    yield tracker
    tracker.close()


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
    Retirer(versions, runtime, leaks, Config()).retire_ready()
    assert runtime.stopped == [1]
    assert calls == ["pkg.leaf"]
    assert first.phase is Phase.RETIRED
    assert first.app is None  # the old module graph can go


def test_a_busy_version_retires_at_retire_timeout_with_its_connections_closed(leaks: LeakTracker) -> None:
    versions, first, _, calls = swapped(retire_timeout=0.05)
    stream = _Stream(first)
    retirer = Retirer(versions, _Runtime(), leaks, Config(retire_timeout=0.05))
    retirer.retire_ready()
    assert versions.draining() == [first]  # still busy
    assert calls == []
    time.sleep(0.06)
    retirer.retire_ready()
    assert stream.closed
    assert first.phase is Phase.RETIRED


def test_at_max_versions_the_oldest_draining_version_goes(leaks: LeakTracker) -> None:
    versions, first, second, _ = swapped()
    stream = _Stream(first)  # a websocket that would hold version 1 for retire_timeout
    retirer = Retirer(versions, _Runtime(), leaks, dataclasses.replace(Config(), max_versions=2))
    retirer.make_room()
    assert stream.closed
    assert first.phase is Phase.RETIRED
    assert versions.live == [second]


def test_a_failing_lifespan_shutdown_is_logged_and_the_version_retires_all_the_same(
    leaks: LeakTracker, caplog: pytest.LogCaptureFixture
) -> None:
    versions, first, _, calls = swapped()
    with caplog.at_level(logging.ERROR):
        Retirer(versions, _Runtime(fail=True), leaks, Config()).retire_ready()
    assert "lifespan shutdown of retired version 1 failed" in caplog.text
    assert calls == ["pkg.leaf"]
    assert first.phase is Phase.RETIRED

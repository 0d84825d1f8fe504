"""Versions and the requests they serve, in-process: a request counts itself through its visit,
only what the server computes holds a swap back, and long-lived connections can be closed."""

from __future__ import annotations

import threading
import time
import types

from visits import LongLived

from reload_middleware._pipeline.versions import AppVersion, Phase, VersionSet, Visit


def version(number: int = 1) -> AppVersion:
    return AppVersion(number, app=object(), header=None)


def test_a_visit_is_in_flight_and_computing_until_it_ends() -> None:
    serving = version()
    visit = Visit(serving)
    assert (serving.in_flight, serving.computing) == (1, 1)
    visit.end()
    visit.end()  # a second end changes nothing
    assert (serving.in_flight, serving.computing) == (0, 0)


def test_a_request_paced_by_its_client_is_not_computing() -> None:
    serving = version()
    uploading, answering = Visit(serving), Visit(serving)
    uploading.paced = True
    answering.streaming = True
    assert (serving.in_flight, serving.computing) == (2, 0)
    uploading.paced = False
    assert serving.computing == 1


def test_waiting_for_the_computed_requests_ends_when_the_last_one_streams() -> None:
    serving = version()
    visit = Visit(serving)
    assert serving.wait_computed(timeout=0.01) is False
    timer = threading.Timer(0.05, lambda: setattr(visit, "streaming", True))
    timer.start()
    try:
        assert serving.wait_computed(timeout=10) is True
    finally:
        timer.join()
    assert serving.in_flight == 1  # streaming, still in flight


def test_waiting_for_an_empty_version_ends_when_its_last_request_ends() -> None:
    serving = version()
    visit = Visit(serving)
    assert serving.wait_empty(timeout=0.01, poll=0.001) is False
    visit.end()
    assert serving.wait_empty(timeout=1, poll=0.001) is True


def test_closing_connections_closes_only_the_long_lived_ones() -> None:
    serving = version()
    streams = [LongLived(serving), LongLived(serving)]
    short = LongLived(serving)
    short.long_lived = False  # a response sent in one piece: it ends by itself
    Visit(serving)  # an ordinary request: nothing to close
    assert serving.long_lived == 2
    assert serving.close_connections() == 2
    assert all(stream.closed for stream in streams)
    assert not short.closed
    assert serving.in_flight == 2


def test_a_version_without_long_lived_connections_closes_none() -> None:
    serving = version()
    Visit(serving)
    assert serving.close_connections() == 0


def test_a_swap_makes_the_new_version_serve_and_the_old_one_drain() -> None:
    first, second = version(1), version(2)
    versions = VersionSet(first)
    replaced = {"pkg.leaf": types.ModuleType("pkg.leaf")}
    before = time.monotonic()
    old = versions.swap(second, replaced, retire_timeout=60)
    assert old is first
    assert versions.current is second
    assert (first.phase, second.phase) == (Phase.DRAINING, Phase.SERVING)
    assert first.replaced == replaced
    assert first.retire_by is not None
    assert first.retire_by >= before + 60
    assert versions.draining() == [first]
    assert [state["state"] for state in versions.describe()] == ["draining", "serving"]
    versions.remove(first)
    assert first.phase is Phase.RETIRED
    assert versions.live == [second]
    versions.remove(first)  # retiring twice changes nothing
    assert versions.live == [second]


def test_a_version_describes_its_requests() -> None:
    serving = version(3)
    Visit(serving)
    LongLived(serving)
    described = {"number": 3, "state": "serving", "in_flight": 2, "computing": 1, "long_lived": 1}
    # The long-lived one is listed, as its kind of visit describes itself (a plain Visit: "request").
    assert VersionSet(serving).describe() == [{**described, "connections": [{"kind": "request"}]}]

"""What the reloads came to, in-process: counters, the last reload and error, whether a later
reload resolved it, the failure the error page shows, and one log line per outcome."""

from __future__ import annotations

import logging

import pytest

from reload_middleware._errors import ErrorReport, RestartRequired
from reload_middleware._pipeline.history import History, ReloadRecord

REPORT = ErrorReport("SyntaxError", "invalid syntax", "Traceback ...\n", "/app/pkg/leaf.py", 3)


def record(version: int = 2) -> ReloadRecord:
    return ReloadRecord(modules=("pkg.leaf", "pkg.main"), changed=("pkg.leaf",), duration_ms=12.5, version=version)


def test_a_failure_is_resolved_by_the_next_good_reload(caplog: pytest.LogCaptureFixture) -> None:
    history = History()
    with caplog.at_level(logging.INFO, logger="reload_middleware"):
        history.failed(SyntaxError("invalid syntax"), REPORT, serving=1)
        history.succeeded(record())
        history.log_success(record())
    status = history.as_dict()
    assert (status["reloads"], status["failures"]) == (1, 1)
    assert status["last_error"]["resolved"] is True
    assert status["last_reload"]["version"] == 2
    assert [entry.levelname for entry in caplog.records] == ["ERROR", "INFO"]
    assert "Reload failed, the old version keeps serving: SyntaxError: invalid syntax at /app/pkg/leaf.py:3" in (
        caplog.records[0].getMessage()
    )
    assert caplog.records[1].getMessage().startswith("Reloaded pkg.leaf: 2 module(s) in 12.5 ms, now serving version 2")


@pytest.mark.parametrize("error_page", [True, False])
def test_the_error_page_shows_a_failure_only_while_it_is_unresolved_and_only_when_on(error_page: bool) -> None:
    history = History(error_page=error_page)
    history.failed(SyntaxError("invalid syntax"), REPORT, serving=1)
    assert history.failing is (REPORT if error_page else None)
    history.succeeded(record())
    assert history.failing is None


def test_a_stale_reload_counts_as_a_failure() -> None:
    history = History(error_page=True)
    history.succeeded(record())
    stale = ErrorReport("StaleCode", "the new version still reaches code of the replaced modules", "", None, None)
    history.stale(record(), stale)
    status = history.as_dict()
    assert (status["reloads"], status["failures"]) == (1, 1)
    assert status["last_error"]["resolved"] is False
    assert history.failing is stale


def test_a_change_that_needs_a_restart_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    history = History()
    with caplog.at_level(logging.WARNING, logger="reload_middleware"):
        history.failed(RestartRequired("pkg.ext changed"), REPORT, serving=3)
    assert [entry.levelname for entry in caplog.records] == ["WARNING"]


def test_sources_back_to_what_serves_end_a_failed_build_but_not_a_stale_reload() -> None:
    history = History(error_page=True)
    history.failed(SyntaxError("invalid syntax"), REPORT, serving=1)
    history.restart_required = ("pkg.asgi: the module that wraps the app",)
    history.nothing_to_reload(serving=1)  # an undo: the files are what version 1 was built from
    assert (history.failing, history.resolved) == (None, True)
    assert not history.restart_required

    stale = ErrorReport("StaleCode", "old code still reached", "", None, None)
    history.stale(record(), stale)
    history.nothing_to_reload(serving=2)
    assert (history.failing, history.resolved) == (stale, False)  # still reached, whatever the files say

"""The package's own threads hold nothing of an app: not even the ``sys.excepthook`` an app set."""

from __future__ import annotations

import gc
import sys
import threading
import weakref
from collections.abc import Iterator

import pytest

from reload_middleware._threads import own_thread


class AppHook:
    def __call__(self, *exc_info: object) -> None:
        sys.__excepthook__(*exc_info)  # type: ignore[arg-type]


@pytest.fixture
def app_hook() -> Iterator[weakref.ref[AppHook]]:
    sys.excepthook = AppHook()
    yield weakref.ref(sys.excepthook)
    sys.excepthook = sys.__excepthook__


def test_a_thread_of_ours_does_not_keep_the_excepthook_an_app_set(app_hook: weakref.ref[AppHook]) -> None:
    thread = own_thread(threading.Event().wait, "reload-middleware-test", args=(0.01,))
    sys.excepthook = sys.__excepthook__  # the app's version went away
    gc.collect()
    assert app_hook() is None
    thread.start()
    thread.join()


def test_a_crash_in_a_thread_of_ours_is_still_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    reported: list[tuple[type[BaseException] | None, str]] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: reported.append((args.exc_type, args.thread.name)))

    def crash() -> None:
        raise RuntimeError("boom")

    thread = own_thread(crash, "reload-middleware-crash")
    thread.start()
    thread.join()
    assert reported == [(RuntimeError, "reload-middleware-crash")]

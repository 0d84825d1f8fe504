"""The watcher thread: notices edits under the watched directories and hands the paths over.

On Linux it reads inotify itself (``inotify.py``) and sleeps in ``poll()`` until the kernel has an
event or ``stop()`` wakes it: an idle server is never woken by it. Elsewhere, when the kernel
refuses inotify, or where watchfiles would poll (``WATCHFILES_FORCE_POLLING``, WSL, whose bind
mounts give no events), it runs watchfiles' loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import select
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import watchfiles

from .._threads import own_thread
from .inotify import Inotify, Unavailable
from .inotify import available as inotify_available

logger = logging.getLogger(__name__)


class _DropChangeCounts(logging.Filter):
    """watchfiles logs "N changes detected" at INFO for every event: ours are reported better."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.threadName == WATCHER_THREAD and "detected" in str(record.msg))


WATCHER_THREAD = "reload-middleware-watcher"
logging.getLogger("watchfiles.main").addFilter(_DropChangeCounts())


def polling_forced() -> bool:
    """Whether watchfiles would poll here: ``WATCHFILES_FORCE_POLLING`` set (and not to false,
    disable or disabled), or WSL, where files on a Windows drive or a bind mount (Docker Desktop)
    change without an inotify event. The same rule as watchfiles' own, so that its variable works
    as its users know it."""
    value = os.environ.get("WATCHFILES_FORCE_POLLING")
    if value:
        return value.lower() not in {"false", "disable", "disabled"}
    return "microsoft-standard" in platform.uname().release.lower()


class Watcher:
    """A daemon thread that reports changed paths under some directories, stopped with ``stop()``.

    On Linux it reads inotify itself (``inotify.py``) and sleeps until the kernel has an event;
    elsewhere it runs ``watchfiles.watch``. If watching fails (the OS refuses a watch, a callback
    raises), the loop logs it, counts it in ``restarts`` and starts again after a pause: the watcher
    never stays dead.
    """

    RESTART_PAUSE = 0.5
    # A save is often a burst of events (a temporary file written, then renamed over the module):
    # once one arrives, events are collected until none came for the quiet time (1 ms, or the
    # user's ``reload_delay``), at most _DEBOUNCE_S (or ten quiet times) in all.
    _QUIET_MS = 1
    _DEBOUNCE_S = 0.2

    def __init__(
        self,
        watch_dirs: Sequence[Path],
        watch_filter: Callable[[watchfiles.Change, str], bool],
        on_change: Callable[[set[str] | None], None],
        step_ms: int = 5,
        skip_directory: Callable[[str], bool] = lambda path: False,
        quiet_s: float = 0.0,
    ) -> None:
        self._dirs = tuple(watch_dirs)
        self._step_ms = step_ms
        # A burst of saves (a checkout, a formatter) ends after ``quiet_s`` without a change.
        self._quiet_ms = max(self._QUIET_MS, round(quiet_s * 1000))
        self._burst_s = max(self._DEBOUNCE_S, 10 * quiet_s)
        self._filter = watch_filter
        self._skip_directory = skip_directory
        self._on_change = on_change
        self._stop = threading.Event()
        # stop() writes to this pipe to wake a thread asleep in poll(); the thread closes it.
        self._wake_reader, self._wake_writer = os.pipe()
        os.set_blocking(self._wake_writer, False)
        self._wake_lock = threading.Lock()
        self._wake_closed = False
        self.ready = threading.Event()
        self.restarts = 0
        self.last_error: str | None = None
        if polling_forced():
            self.backend = "polling"
        else:
            self.backend = "inotify" if inotify_available() else "watchfiles"
        self._thread = own_thread(self._run, WATCHER_THREAD)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._wake_lock:
            if not self._thread.is_alive():
                self._close_wake_pipe()  # never started, or already ended
            elif not self._wake_closed:
                with contextlib.suppress(BlockingIOError):  # full: woken already
                    os.write(self._wake_writer, b"x")
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and self.ready.is_set()

    def describe(self) -> dict[str, object]:
        return {
            "running": self.running,
            "backend": self.backend,
            "restarts": self.restarts,
            "last_error": self.last_error,
        }

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    if self.backend == "inotify":
                        self._watch_inotify()
                    else:
                        self._watch_with_watchfiles()
                except Unavailable as exc:
                    logger.info("inotify refused (%s): watching with watchfiles instead", exc)
                    self.backend = "watchfiles"
                except BaseException as exc:  # the watcher must never take the server down, nor stay down
                    self.ready.clear()
                    self.restarts += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    logger.exception("file watcher failed; restarting it in %g s", self.RESTART_PAUSE)
                    self._stop.wait(self.RESTART_PAUSE)
        finally:
            with self._wake_lock:
                self._close_wake_pipe()

    def _close_wake_pipe(self) -> None:
        if not self._wake_closed:
            self._wake_closed = True
            os.close(self._wake_reader)
            os.close(self._wake_writer)

    def _became_ready(self) -> None:
        # The OS watches are registered: report it, and sweep for edits made between the app's
        # import and now.
        if not self.ready.is_set():
            self._on_change(None)
            self.ready.set()

    def _watch_inotify(self) -> None:
        with Inotify(map(str, self._dirs), self._skip_directory) as notify:
            self._became_ready()
            poller = select.poll()
            poller.register(notify.fd, select.POLLIN)
            poller.register(self._wake_reader, select.POLLIN)
            while not self._stop.is_set():
                poller.poll()  # no timeout: only an event or stop() wakes this thread
                if self._stop.is_set():
                    return
                changed, overflowed = notify.read()
                deadline = time.monotonic() + self._burst_s
                while time.monotonic() < deadline and not self._stop.is_set():
                    # Quiet is not enough while a source file is half saved: wait for the rest of
                    # its save (at most the debounce), so that one save is one reload.
                    if not poller.poll(self._quiet_ms) and not self._half_saved(notify.unsettled):
                        break
                    more, dropped = notify.read()
                    changed |= more
                    overflowed |= dropped
                notify.unsettled.clear()  # whatever stays half saved is reported as it is
                if overflowed:
                    self._on_change(None)  # events were lost: look at every tracked file
                accepted = {path for path in changed if self._filter(watchfiles.Change.modified, path)}
                if accepted:
                    self._on_change(accepted)

    def _half_saved(self, unsettled: set[str]) -> bool:
        return any(self._filter(watchfiles.Change.modified, path) for path in unsettled)

    def _watch_with_watchfiles(self) -> None:
        # The step is how long watchfiles waits for a burst of events to end, and how often its
        # loop wakes: 5 ms makes an edit visible in about 7 ms, and costs about 2% of a core while
        # idle (15 ms: about 20 ms and 0.5%). Reloading is for development and deploys: speed wins.
        # The timeout wakes the loop once at start so that it can report itself ready. Polling
        # (forced) looks at the files every 300 ms, watchfiles' default.
        changes_seen = watchfiles.watch(
            *self._dirs,
            watch_filter=self._filter,
            debounce=round(self._burst_s * 1000),
            step=max(self._step_ms, self._quiet_ms),
            force_polling=self.backend == "polling",
            rust_timeout=250,
            yield_on_timeout=True,
            stop_event=self._stop,
            raise_interrupt=False,
        )
        for changes in changes_seen:
            self._became_ready()
            if changes:
                self._on_change({path for _, path in changes})
            elif self.backend == "polling":
                # watchfiles' poller compares modification times in whole seconds: a second save
                # of the same size within the second of the first is missed. Between polls (every
                # rust_timeout), a sweep of the tracked files compares them to the nanosecond.
                self._on_change(None)

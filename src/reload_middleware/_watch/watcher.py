"""Change detection: which watched files really changed since the version being served was built.

A background thread turns watchfiles events into *candidate* paths; the reload that follows (or a
``POST`` on the admin endpoint) compares candidates against the last loaded fingerprints.
The request path only reads ``ChangeDetector.dirty``: it never stats a file.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

import watchfiles

from .._files import EXTENSION_SUFFIXES, NEVER_WATCHED, SOURCE_SUFFIXES, environment_dirs
from .inotify import Inotify, Unavailable
from .inotify import available as inotify_available

logger = logging.getLogger(__name__)


class SourceFilter(watchfiles.DefaultFilter):
    """Python sources and extension modules below the watch directories, minus exclusions."""

    def __init__(self, watch_dirs: Sequence[Path], exclude: Sequence[str], include: Sequence[str] = ()) -> None:
        self._installed = environment_dirs()
        self.ignore_paths = self._installed
        super().__init__()
        self._roots = tuple(str(d) + os.sep for d in watch_dirs)
        self._exclude = tuple(exclude)
        self._include = tuple(include)

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        return (path.endswith(SOURCE_SUFFIXES + EXTENSION_SUFFIXES) or self.is_asset(path)) and self.covers(path)

    def is_asset(self, path: str) -> bool:
        """A file, not a module, whose edits reload the app (a template; see the ``include`` option)."""
        name = os.path.basename(path)
        return any(fnmatch.fnmatch(name, pattern) for pattern in self._include)

    def covers(self, path: str) -> bool:
        """Whether ``path`` (absolute, resolved) belongs to the watched tree: below a watched
        directory, and not in a hidden directory, a virtualenv's ``site-packages`` or ``node_modules``
        (a project root holds those too, as with ``uvicorn --reload``)."""
        root = next((root for root in self._roots if path.startswith(root)), None)
        if root is None or not super().__call__(watchfiles.Change.modified, path):
            return False
        inside = path[len(root) :].split(os.sep)[:-1]
        if any(part.startswith(".") or part in NEVER_WATCHED for part in inside):
            return False
        pure = PurePath(path)
        return not any(pure.match(pattern) for pattern in self._exclude)

    def skips_directory(self, path: str) -> bool:
        """Whether a directory below a watched one holds nothing ``covers`` could accept."""
        name = os.path.basename(path)
        return name.startswith(".") or name in NEVER_WATCHED or (path + os.sep).startswith(self._installed)


@dataclass(frozen=True)
class Fingerprint:
    # ctime and inode too: mtime can be set back (or be coarse on some file systems), but every
    # write moves ctime, and a save by rename brings a new inode.
    stat: tuple[int, int, int, int]
    digest: bytes

    def same_stat(self, stat: os.stat_result) -> bool:
        return self.stat == _identity(stat)


def _identity(stat: os.stat_result) -> tuple[int, int, int, int]:
    return (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino)


def fingerprint(path: str) -> Fingerprint | None:
    """Content fingerprint of a file; ``None`` when it does not exist (deleted)."""
    try:
        with open(path, "rb") as file:
            stat = os.fstat(file.fileno())
            digest = hashlib.blake2b(file.read(), digest_size=16).digest()
    except OSError:
        return None
    return Fingerprint(_identity(stat), digest)


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


class ChangeDetector:
    """Known fingerprints of tracked files, and the candidate paths that may have changed.

    Thread-safe: the watcher thread adds candidates, the reloader takes and commits changes.
    A change stays pending until a reload that includes it succeeds, so that fixing one file
    of a failed reload retries every change of that reload. A file noticed again while a reload
    that took it runs stays pending after that reload: a save during a build is never lost.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, Fingerprint | None] = {}
        self._pending: set[str] = set()
        self._taken: set[str] = set()  # by the reload under way
        self.dirty = False

    def track(self, paths: Iterable[str]) -> None:
        """Remember the current content of files newly loaded as modules."""
        with self._lock:
            new = [path for path in paths if path not in self._known]
        prints = {path: fingerprint(path) for path in new}
        with self._lock:
            for path, print_ in prints.items():
                self._known.setdefault(path, print_)

    def track_unloaded(self, paths: Iterable[str]) -> None:
        """Track files whose loaded content is unknown: each is a pending change until committed."""
        with self._lock:
            for path in paths:
                self._known.setdefault(path, None)
                self._pending.add(path)

    def knows(self, path: str) -> bool:
        return path in self._known

    def same_content(self, known_path: str, other_path: str) -> bool:
        """Whether ``other_path`` holds what was loaded from ``known_path``."""
        with self._lock:
            known = self._known.get(known_path)
        other = fingerprint(other_path)
        return known is not None and other is not None and known.digest == other.digest

    def notice(self, paths: Iterable[str]) -> None:
        """Called from the watcher thread: these files may have changed."""
        with self._lock:
            self._pending.update(paths)
            self.dirty = True

    def sweep(self) -> None:
        """Stat every tracked file and notice those whose mtime or size moved (O(tracked files))."""
        with self._lock:
            known = list(self._known.items())
        moved = [path for path, print_ in known if not _matches(print_, _stat(path))]
        if moved:
            self.notice(moved)

    def take_changes(self) -> dict[str, Fingerprint | None]:
        """The pending files whose content differs from what was loaded, with their new fingerprints.

        Touch-only changes (new mtime, same content) are absorbed here and never reach a reload.
        """
        with self._lock:
            self.dirty = False
            pending = [(path, self._known[path]) for path in self._pending if path in self._known]
            self._taken = {path for path, _ in pending}
            self._pending.clear()
        changed: dict[str, Fingerprint | None] = {}
        absorbed: dict[str, Fingerprint | None] = {}
        for path, old in pending:
            if _matches(old, _stat(path)):
                absorbed[path] = old
                continue
            new = fingerprint(path)
            if old is not None and new is not None and new.digest == old.digest:
                absorbed[path] = new
            elif old != new:
                changed[path] = new
            else:
                absorbed[path] = new
        if absorbed:
            with self._lock:
                self._known.update(absorbed)
                self._taken.difference_update(absorbed)
        return changed

    def commit(self, loaded: dict[str, Fingerprint | None]) -> None:
        """These files are now served as loaded. Those noticed again since they were taken stay
        pending: their newest content may not be the one loaded."""
        with self._lock:
            self._known.update(loaded)
            self._taken.clear()

    def abort(self) -> None:
        """The reload that took the pending changes failed: they are pending again."""
        with self._lock:
            self._pending.update(self._taken)
            self._taken.clear()

    def defer(self, paths: Iterable[str]) -> None:
        """Keep ``paths`` pending without asking for a reload (a change that needs a restart)."""
        with self._lock:
            self._pending.update(paths)
            self._taken.difference_update(paths)

    def pending(self) -> set[str]:
        with self._lock:
            return self._pending | self._taken


def _matches(known: Fingerprint | None, stat: os.stat_result | None) -> bool:
    if known is None or stat is None:
        return known is None and stat is None
    return known.same_stat(stat)


class _DropChangeCounts(logging.Filter):
    """watchfiles logs "N changes detected" at INFO for every event: ours are reported better."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.threadName == WATCHER_THREAD and "detected" in str(record.msg))


WATCHER_THREAD = "reload-middleware-watcher"
logging.getLogger("watchfiles.main").addFilter(_DropChangeCounts())


class Watcher:
    """A daemon thread that reports changed paths under some directories, stopped with ``stop()``.

    On Linux it reads inotify itself (``_inotify.py``) and sleeps until the kernel has an event;
    elsewhere it runs ``watchfiles.watch``. If watching fails (the OS refuses a watch, a callback
    raises), the loop logs it, counts it in ``restarts`` and starts again after a pause: the watcher
    never stays dead.
    """

    RESTART_PAUSE = 0.5
    # A save is often a burst of events (a temporary file written, then renamed over the module):
    # once one arrives, events are collected until none came for this long (at most _DEBOUNCE_S).
    _QUIET_MS = 1
    _DEBOUNCE_S = 0.2

    def __init__(
        self,
        watch_dirs: Sequence[Path],
        watch_filter: Callable[[watchfiles.Change, str], bool],
        on_change: Callable[[set[str] | None], None],
        step_ms: int = 5,
        skip_directory: Callable[[str], bool] = lambda path: False,
    ) -> None:
        self._dirs = tuple(watch_dirs)
        self._step_ms = step_ms
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
        self.backend = "inotify" if inotify_available() else "watchfiles"
        self._thread = threading.Thread(target=self._run, name=WATCHER_THREAD, daemon=True)

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
        return {"running": self.running, "restarts": self.restarts, "last_error": self.last_error}

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    if self.backend == "inotify":
                        self._watch_inotify()
                    else:
                        self._watch_polling()
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
                deadline = time.monotonic() + self._DEBOUNCE_S
                while time.monotonic() < deadline and poller.poll(self._QUIET_MS) and not self._stop.is_set():
                    more, dropped = notify.read()
                    changed |= more
                    overflowed |= dropped
                if overflowed:
                    self._on_change(None)  # events were lost: look at every tracked file
                accepted = {path for path in changed if self._filter(watchfiles.Change.modified, path)}
                if accepted:
                    self._on_change(accepted)

    def _watch_polling(self) -> None:
        # The step is how long watchfiles waits for a burst of events to end, and how often its
        # loop wakes: 5 ms makes an edit visible in about 7 ms, and costs about 2% of a core while
        # idle (15 ms: about 20 ms and 0.5%). Reloading is for development and deploys: speed wins.
        # The timeout wakes the loop once at start so that it can report itself ready.
        changes_seen = watchfiles.watch(
            *self._dirs,
            watch_filter=self._filter,
            debounce=200,
            step=self._step_ms,
            rust_timeout=250,
            yield_on_timeout=True,
            stop_event=self._stop,
            raise_interrupt=False,
        )
        for changes in changes_seen:
            self._became_ready()
            if changes:
                self._on_change({path for _, path in changes})

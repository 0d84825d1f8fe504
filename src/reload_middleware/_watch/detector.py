"""Change detection: which watched files really changed since the version being served was built.

The watcher thread hands over *candidate* paths; a reload (or a ``POST`` on the admin endpoint)
compares them against the fingerprints of what was loaded: content, not timestamps, so a save that
changes nothing (a touch, an editor's backup dance) reloads nothing. Requests never look at it (they
read the pipeline's gate): no request stats a file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# File timestamps come from a coarse kernel clock, a few ms behind time.time_ns(): compare them
# with some slack.
CLOCK_MARGIN_NS = 50_000_000


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
    """Content fingerprint of a file, or of a directory's list of names (a module that listed it
    at import depends on which files it holds); ``None`` when it does not exist (deleted)."""
    if os.path.isdir(path):
        try:
            stat = os.stat(path)
            names = "\0".join(sorted(os.listdir(path))).encode("utf-8", "surrogateescape")
        except OSError:
            return None
        return Fingerprint(_identity(stat), hashlib.blake2b(names, digest_size=16).digest())
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

    def track_read(self, path: str, read_at_ns: int | None) -> None:
        """Remember a file the app read at ``read_at_ns`` (``time.time_ns()``): if it may have
        changed since (its ctime is not clearly older: file times tick coarsely), that is a
        pending change, at worst one reload too many."""
        print_ = fingerprint(path)
        with self._lock:
            if path in self._known:
                return
            if print_ is not None and read_at_ns is not None and print_.stat[1] < read_at_ns - CLOCK_MARGIN_NS:
                self._known[path] = print_
            else:
                self._known[path] = None
                self._pending.add(path)
                self.dirty = True

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

"""Linux's inotify, read directly, so that an idle server is never woken by its file watcher.

watchfiles' loop wakes every ``step`` to look for events and for its stop event: at the 5 ms step
that sees an edit quickly, 200 wake-ups a second of an idle server. Here the watcher thread sleeps
in ``poll()`` on the inotify descriptor and a stop pipe until the kernel has an event or the
watcher is stopped. Elsewhere (macOS, Windows), or if the kernel refuses (no inotify, the watch
limit reached), the watcher uses watchfiles.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
import sys
from collections.abc import Callable, Iterable

_IN_MODIFY = 0x002
_IN_ATTRIB = 0x004
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
_IN_ISDIR = 0x40000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
# What a save can do to a file (IN_MODIFY too: a writer that flushes half a module and keeps the
# file open is seen, as watchfiles sees it), and to a directory.
_MASK = (
    _IN_MODIFY
    | _IN_ATTRIB
    | _IN_CLOSE_WRITE
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
    | _IN_DELETE_SELF
    | _IN_MOVE_SELF
)
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name
_READ_SIZE = 64 * 1024


class Unavailable(OSError):
    """inotify cannot be used here: use watchfiles."""


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.inotify_init1  # noqa: B018 (a libc without inotify raises AttributeError here)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def available() -> bool:
    return _LIBC is not None


class Inotify:
    """Recursive inotify watches on directory trees; ``read()`` returns the paths events named.

    Directories created (or moved in) later are watched as they appear, and the files already in
    them reported, since they may have been written before the watch existed.
    """

    def __init__(self, roots: Iterable[str], skip_directory: Callable[[str], bool]) -> None:
        if _LIBC is None:
            raise Unavailable("inotify is not available on this platform")
        self._skip = skip_directory
        self._directories: dict[int, str] = {}
        # Files a save has not finished with: written but not closed yet (an editor that truncates
        # then writes), or moved away or deleted and not back yet (vim moves the old file aside
        # before it writes the new one). Read between those events, a module is half there.
        self.unsettled: set[str] = set()
        fd = _LIBC.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise Unavailable(ctypes.get_errno(), f"inotify_init1: {os.strerror(ctypes.get_errno())}")
        self.fd: int = fd
        try:
            for root in roots:
                self._add_tree(root, report=None)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Inotify:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def read(self) -> tuple[set[str], bool]:
        """The paths named by the events the kernel has now (none if it has none), and whether it
        dropped some (its queue overflowed: the caller must look at every file itself)."""
        paths: set[str] = set()
        overflowed = False
        while True:
            try:
                data = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                return paths, overflowed
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
                offset += _EVENT.size + length
                if mask & _IN_Q_OVERFLOW:
                    overflowed = True
                    continue
                directory = self._directories.get(wd)
                if directory is None:
                    continue
                if mask & _IN_IGNORED:
                    del self._directories[wd]  # the directory is gone
                    continue
                path = os.path.join(directory, os.fsdecode(name)) if name else directory
                if mask & _IN_ISDIR:
                    if mask & (_IN_CREATE | _IN_MOVED_TO) and not self._skip(path):
                        self._add_tree(path, report=paths)
                else:
                    paths.add(path)
                    self._settle(path, mask)

    def _settle(self, path: str, mask: int) -> None:
        if mask & (_IN_CLOSE_WRITE | _IN_MOVED_TO):
            self.unsettled.discard(path)  # written and closed, or moved into place: complete
        elif mask & (_IN_MODIFY | _IN_CREATE | _IN_DELETE | _IN_MOVED_FROM):
            self.unsettled.add(path)

    def _add_tree(self, root: str, report: set[str] | None) -> None:
        """Watch ``root`` and its subdirectories; add the files found to ``report`` if given."""
        for directory, subdirectories, files in os.walk(root):
            self._add(directory)
            subdirectories[:] = [name for name in subdirectories if not self._skip(os.path.join(directory, name))]
            if report is not None:
                report.update(os.path.join(directory, name) for name in files)

    def _add(self, directory: str) -> None:
        assert _LIBC is not None
        wd = _LIBC.inotify_add_watch(self.fd, os.fsencode(directory), _MASK)
        if wd < 0:
            code = ctypes.get_errno()
            if code in (errno.ENOENT, errno.ENOTDIR):
                return  # gone already
            raise Unavailable(code, f"inotify_add_watch({directory}): {os.strerror(code)}")
        self._directories[wd] = directory

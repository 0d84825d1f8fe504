"""Files read while a module executes at import (a YAML or JSON config, a data file, a template
read with ``open()``), or later by its code (``RunTimeReads``): dependencies of that module, so
that editing one reloads it. And each module's top-level code object, as it is loaded: every
function, class and lambda of that module version is compiled into it, which is how its code is
recognised once the version is replaced.

What is seen goes through a few entry points, wrapped once when reloading is on: ``open()``
(``builtins.open`` and ``io.open``, which ``pathlib`` uses), ``os.open``, ``os.listdir`` and
``os.scandir`` (``pkgutil``, ``glob``, ``Path.glob``), and the source and bytecode loaders'
``get_code``. Not an audit hook: one cannot be removed, and the process then pays a Python call
for every audited event (``id()``, frame and attribute accesses: a dozen per request in uvicorn),
5 % of a minimal endpoint's throughput, measured. A wrapper costs only the calls it wraps, none of
which a request makes in the usual case. Calls made past them (a reference to ``io.open`` taken
before reloading was on, ``io.FileIO``, C code) are not seen: ``include`` names such files.
"""

from __future__ import annotations

import builtins
import functools
import io
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from importlib import _bootstrap_external
from types import CodeType, FrameType
from typing import Any

_recording = threading.local()
_installed = False
_install_lock = threading.Lock()
_WRITING = frozenset("wax+")


class ReadRecorder:
    """Collects ``{module name: {absolute path read}}`` in the thread that enters it."""

    def __init__(self) -> None:
        self.reads: dict[str, set[str]] = {}
        self.module_code: dict[str, CodeType] = {}  # by the file it was compiled from

    def executed(self, code: CodeType) -> None:
        if code.co_name == "<module>":
            self.module_code[code.co_filename] = code

    def __enter__(self) -> ReadRecorder:
        _install()
        self._outer = getattr(_recording, "recorder", None)
        _recording.recorder = self
        return self

    def __exit__(self, *exc_info: object) -> None:
        _recording.recorder = self._outer

    def note(self, path: str, frame: FrameType | None) -> None:
        """``path`` read (or listed) by the code running in ``frame``."""
        module = _importing_module(frame)
        if module is not None:
            self.reads.setdefault(module, set()).add(os.path.abspath(path))


def _install() -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        _installed = True
    _wrap_open()
    _wrap_listings()
    _wrap_get_code()


class RunTimeReads:
    """Files project code reads while the app serves, outside any import (a cached settings
    function reading ``.env`` at the first request): ``{module: {path}}`` for the innermost
    project module on the reading thread's stack, under ``roots``. Files this process wrote are
    never counted: they are its data (uploads, a database), not its sources.

    ``wake`` is called (from the reading thread) when there is something new to ``take()``.
    """

    def __init__(self, roots: tuple[str, ...], is_project: Callable[[str], bool], wake: Callable[[], object]) -> None:
        self._roots = roots
        self._is_project = is_project
        self._wake = wake
        self._lock = threading.Lock()
        self._pending: dict[str, set[str]] = {}
        self._read_at: dict[str, int] = {}  # each new path: when it was read (time.time_ns())
        # Where relative paths start: read once, since the hook runs on event loops, where a
        # blocking call (a getcwd() inside os.path.abspath, a stat) is not ours to make.
        self._cwd = os.getcwd()
        self._known: set[tuple[str, str]] = set()
        self._written: set[str] = set()

    def start(self) -> None:
        _install()
        _run_time.add(self)

    def stop(self) -> None:
        _run_time.discard(self)

    def take(self) -> tuple[dict[str, set[str]], dict[str, int]]:
        """The reads noted since the last call, and when each path was read (so that an edit
        made before the path is watched is not mistaken for the content that was read)."""
        with self._lock:
            pending, self._pending = self._pending, {}
            read_at, self._read_at = self._read_at, {}
        return pending, read_at

    def forget(self, modules: Iterable[str]) -> None:
        """``modules`` were executed anew: their next reads count again."""
        modules = set(modules)
        with self._lock:
            self._known = {known for known in self._known if known[0] not in modules}

    def note(self, path: str, writing: bool, frame: FrameType | None) -> None:
        path = os.path.normpath(path if path.startswith(os.sep) else os.path.join(self._cwd, path))
        if not path.startswith(self._roots) or path.endswith(_CODE):
            return
        if writing:
            with self._lock:
                if len(self._written) < _MAX_WRITTEN:
                    self._written.add(path)
            return
        module = self._reading_module(frame)
        if module is None or (module, path) in self._known or path in self._written:
            return
        with self._lock:
            self._known.add((module, path))
            self._pending.setdefault(module, set()).add(path)
            self._read_at.setdefault(path, time.time_ns())
        self._wake()

    def _reading_module(self, frame: FrameType | None) -> str | None:
        while frame is not None:
            name = frame.f_globals.get("__name__")
            if type(name) is str and self._is_project(name):
                return name
            frame = frame.f_back
        return None


_run_time: weakref.WeakSet[RunTimeReads] = weakref.WeakSet()
_CODE = (".py", ".pyc", ".so", ".pyd")  # linecache reads sources for tracebacks: not a dependency
_MAX_WRITTEN = 10_000


def _wrap_open() -> None:
    original_open, original_os_open = io.open, os.open

    def open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if _recording_anything():
            _opened(file, mode, None, sys._getframe(1))
        return original_open(file, mode, *args, **kwargs)

    def os_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if _recording_anything():
            _opened(path, None, flags, sys._getframe(1))
        return original_os_open(path, flags, mode, dir_fd=dir_fd)

    functools.update_wrapper(open, original_open)
    functools.update_wrapper(os_open, original_os_open)
    builtins.open = io.open = open
    os.open = os_open


def _wrap_listings() -> None:
    """A directory listed at import (plugins discovered by listing a package): a dependency, so
    that a file added to it or removed from it reloads the module that listed it. The import
    system's own listings go through ``posix.listdir``, past these."""
    for name in ("listdir", "scandir"):
        original = getattr(os, name)

        def listing(path: Any = None, *, _original: Callable[..., Any] = original) -> Any:
            recorder: ReadRecorder | None = getattr(_recording, "recorder", None)
            if recorder is not None and isinstance(path, str | bytes | os.PathLike | None):
                recorder.note(os.fsdecode(path) if path is not None else ".", sys._getframe(1))
            return _original(path) if path is not None else _original()

        functools.update_wrapper(listing, original)
        setattr(os, name, listing)


def _wrap_get_code() -> None:
    """The code object each module's source (or bytecode) compiles to, as its loader hands it out
    to be executed."""
    for loader in (_bootstrap_external.SourceLoader, _bootstrap_external.SourcelessFileLoader):
        original = loader.get_code

        def get_code(self: Any, fullname: str, *, _original: Callable[..., Any] = original) -> Any:
            code = _original(self, fullname)
            recorder: ReadRecorder | None = getattr(_recording, "recorder", None)
            if recorder is not None and type(code) is CodeType:
                recorder.executed(code)
            return code

        functools.update_wrapper(get_code, original)
        loader.get_code = get_code  # type: ignore[method-assign]


def _recording_anything() -> bool:
    return bool(_run_time) or getattr(_recording, "recorder", None) is not None


def _opened(file: Any, mode: str | None, flags: int | None, frame: FrameType) -> None:
    if isinstance(file, int):
        return  # a file descriptor: nothing to name
    try:
        path = os.fsdecode(os.fspath(file))
    except TypeError:
        return  # not a path: the call itself will say so
    writing = (type(mode) is str and not _WRITING.isdisjoint(mode)) or (
        flags is not None and bool(flags & (os.O_WRONLY | os.O_RDWR))
    )
    recorder: ReadRecorder | None = getattr(_recording, "recorder", None)
    if recorder is not None:
        if not writing:
            recorder.note(path, frame)
    else:
        for reads in list(_run_time):
            reads.note(path, writing, frame)


def executing_namespace(frame: FrameType | None) -> dict[str, Any] | None:
    """The namespace of the module whose top-level code runs in ``frame`` or below it: the module
    a read, a listing or a logging handler belongs to (not a helper it called on the way)."""
    while frame is not None:
        if frame.f_code.co_name == "<module>":
            return frame.f_globals
        frame = frame.f_back
    return None


def _importing_module(frame: FrameType | None) -> str | None:
    """The name of the module whose top-level code runs in ``frame`` or below it."""
    namespace = executing_namespace(frame)
    name = namespace.get("__name__") if namespace is not None else None
    return name if isinstance(name, str) else None

"""Files read while a module executes at import (a YAML or JSON config, a data file, a template
read with ``open()``): dependencies of that module, so that editing one reloads it. And each
module's top-level code object, as it is executed: every function, class and lambda of that module
version is compiled into it, which is how its code is recognised once the version is replaced.

An audit hook (installed once, when reloading is on; audit hooks cannot be removed) sees every
``open`` and ``exec``; it records them only in a thread that is importing under a recorder (the
app's first import, and each build): a read for the module whose top-level code is running.
"""

from __future__ import annotations

import os
import sys
import threading
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

    def note(self, path: str) -> None:
        module = _importing_module(sys._getframe(2))
        if module is not None:
            self.reads.setdefault(module, set()).add(os.path.abspath(path))


def _install() -> None:
    global _installed
    with _install_lock:
        if not _installed:
            sys.addaudithook(_on_audit_event)
            _installed = True


def _on_audit_event(event: str, args: tuple[Any, ...]) -> None:
    # Called for every audit event of the process: the first test must be the cheapest.
    if event != "open":
        if event == "exec":
            _on_exec(args[0])
        return
    recorder: ReadRecorder | None = getattr(_recording, "recorder", None)
    if recorder is None:
        return
    path, mode = args[0], args[1]
    if type(path) is not str or (type(mode) is str and not _WRITING.isdisjoint(mode)):
        return
    if mode is None and len(args) > 2 and isinstance(args[2], int) and args[2] & (os.O_WRONLY | os.O_RDWR):
        return  # os.open for writing
    recorder.note(path)


def _on_exec(code: object) -> None:
    recorder: ReadRecorder | None = getattr(_recording, "recorder", None)
    if recorder is not None and type(code) is CodeType:
        recorder.executed(code)


def _importing_module(frame: FrameType | None) -> str | None:
    """The module whose top-level code runs in ``frame`` or below it: the one that depends on the
    file (a helper it called to read the file does not)."""
    while frame is not None:
        if frame.f_code.co_name == "<module>":
            name = frame.f_globals.get("__name__")
            return name if isinstance(name, str) else None
        frame = frame.f_back
    return None

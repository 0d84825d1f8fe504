"""Signal handlers a module installs at import, as effects of that module.

Only the main thread may install a signal handler, and a reload imports in a worker thread. So the
first handler a module installs for a signal (at the app's first import, in the main thread) is a
trampoline: the handler the app's modules set for that signal is kept here and the trampoline
calls it. A later version's module, imported in a worker thread, then only replaces the kept
handler; when its module is replaced that handler is taken back, and the one before it serves
again. A signal the first version did not handle still needs the main thread: that import fails
with a hint, as before.

``signal.getsignal()`` answers what the app set, not the trampoline. When the handler to run is
not a function (``SIG_DFL``, ``SIG_IGN``), the trampoline hands the signal back to the system,
where it does what it would have done.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

_lock = threading.Lock()
# Per signal routed through the trampoline: what the system had before, then each handler set.
_kept: dict[int, list[Handler]] = {}


@dataclass(eq=False)
class HandlerSet:
    """``handler`` set for ``signum`` by a module."""

    signum: int
    handler: Handler

    def undo(self) -> None:
        with _lock:
            kept = _kept.get(self.signum, [])
            for index in range(len(kept) - 1, 0, -1):
                if kept[index] is self.handler:
                    del kept[index]
                    break

    def redo(self) -> None:
        with _lock:
            _kept.setdefault(self.signum, [None]).append(self.handler)


Note = Callable[[HandlerSet, FrameType | None], bool]


def install(note: Note) -> None:
    """Route the handlers that modules set at import through the trampoline."""
    set_handler, get_handler = signal.signal, signal.getsignal

    def trampoline(signum: int, frame: FrameType | None) -> Any:
        handler = _current(signum)
        if callable(handler):
            return handler(signum, frame)
        # Runs in the main thread, where the system's own disposition may be put back.
        with _lock:
            _kept.pop(signum, None)
        set_handler(signum, handler if handler is not None else signal.SIG_DFL)
        if handler in (None, signal.SIG_DFL):
            signal.raise_signal(signum)
        return None

    def noted_signal(signum: int, handler: Handler) -> Handler:
        effect = HandlerSet(signum, handler)
        if not note(effect, sys._getframe(1)):
            if signum in _kept and handler is _current(signum):
                handler = trampoline  # putting back what getsignal() answered puts back the routing
            return set_handler(signum, handler)
        if signum in _kept:  # routed already (the system may hold a server's handler for now)
            before = _current(signum)
        else:
            before = set_handler(signum, trampoline)  # outside the main thread this raises, as it did
            with _lock:
                _kept[signum] = [before]
        effect.redo()
        return before

    def noted_getsignal(signum: int) -> Handler:
        handler = get_handler(signum)
        return _current(signum) if handler is trampoline else handler

    signal.signal = noted_signal  # type: ignore[assignment]
    signal.getsignal = noted_getsignal  # type: ignore[assignment]


def _current(signum: int) -> Handler:
    with _lock:
        kept = _kept.get(signum)
        return kept[-1] if kept else None

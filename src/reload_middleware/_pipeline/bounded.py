"""Run user code (a build, a warm-up) in a thread of its own, bounded in time.

Past its limit the thread is interrupted: an asynchronous exception (``Interrupted``) is raised in
it at its next bytecode, which stops any pure-Python loop (``while True:`` at module level). A
thread blocked in C (a ``time.sleep``, a socket read) cannot be interrupted that way; it is
abandoned, reported with the stack it is stuck in, and ``on_late`` cleans up if it ever ends.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Generic, TypeVar

from .._errors import BuildTimeout, Interrupted, is_machinery
from .._threads import own_thread

T = TypeVar("T")

# How often, and how long apart, an interruption is retried: user code may catch it once
# (a bare ``except:``), and a thread returning from a C call needs a moment to see it.
_INTERRUPT_TRIES = 5
_INTERRUPT_WAIT = 0.1


class Stuck(BuildTimeout):
    """The work could not be interrupted (blocked in C); its thread is abandoned, still running."""

    def __init__(self, message: str, thread: threading.Thread) -> None:
        super().__init__(message)
        self.thread = thread


class _Job(Generic[T]):
    def __init__(self, work: Callable[[], T], on_late: Callable[[], object] | None) -> None:
        self._work = work
        self._on_late = on_late
        self._lock = threading.Lock()
        self.done = threading.Event()
        self.abandoned = False
        self.result: T | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._work()
        except BaseException as exc:  # everything, SystemExit included, goes back to the caller
            self.error = exc
        finally:
            with self._lock:
                self.done.set()
                late = self.abandoned
            if late and self._on_late is not None:
                self._on_late()

    def abandon(self) -> bool:
        """Mark the job abandoned unless it finished meanwhile; ``True`` if abandoned."""
        with self._lock:
            self.abandoned = not self.done.is_set()
            return self.abandoned

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


def run_bounded(work: Callable[[], T], timeout: float, what: str, *, on_late: Callable[[], object] | None = None) -> T:
    """Run ``work`` in a new thread and return its result, or raise what it raised.

    Raises:
        BuildTimeout: ``work`` ran past ``timeout`` and was interrupted (it has stopped).
        Stuck: ``work`` ran past ``timeout`` and could not be interrupted; ``on_late`` runs when
            (if ever) it ends.
    """
    job: _Job[T] = _Job(work, on_late)
    thread = own_thread(job.run, f"reload-middleware-{what}")
    thread.start()
    if job.done.wait(timeout):
        return job.outcome()
    where = stack_of(thread)
    for _ in range(_INTERRUPT_TRIES):
        _interrupt(thread)
        if job.done.wait(_INTERRUPT_WAIT):
            break
    if job.done.is_set():
        if isinstance(job.error, Interrupted) or _caused_by_interruption(job.error):
            raise BuildTimeout(f"the {what} did not finish within {timeout:g} s and was stopped") from job.error
        return job.outcome()  # it finished on its own while we were interrupting it
    if not job.abandon():
        return job.outcome()
    raise Stuck(
        f"the {what} did not finish within {timeout:g} s and cannot be interrupted (it is blocked outside "
        f"Python code); it is abandoned and the old version serves on. It is stuck at:\n{where}",
        thread,
    )


def _caused_by_interruption(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, Interrupted):
            return True
        error = error.__cause__ or error.__context__
    return False


def _interrupt(thread: threading.Thread) -> None:
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(Interrupted))


def stack_of(thread: threading.Thread) -> str:
    """The user's frames of a running thread, innermost last (the import machinery's left out)."""
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None:
        return "(no stack: the thread has ended)"
    frames = [entry for entry in traceback.extract_stack(frame) if not is_machinery(entry.filename)]
    return "".join(traceback.format_list(frames[-8:])).rstrip() or "(only the import machinery's frames)"

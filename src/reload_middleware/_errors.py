"""One exception family, and the structured error report the admin endpoint shows."""

from __future__ import annotations

import importlib
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

# uvicorn's exit code when the server cannot start (a wrong import string among others); gunicorn's
# for a worker that failed to boot.
STARTUP_FAILURE = 3


class ReloadError(Exception):
    """Base class of every error this package raises."""


class ImportStringError(ReloadError):
    """The app's import string (``"module:attribute"``) does not lead to an app."""


class ConfigError(ReloadError, ValueError):
    """An option or environment variable has a value we cannot use."""


class BuildError(ReloadError):
    """Building a new version failed: the old version keeps serving."""


class RestartRequired(ReloadError):
    """A changed file cannot be reloaded in-process (an extension module, the wrapper module, ...)."""


class BuildTimeout(ReloadError):
    """A build (or a warm-up) did not finish within its time limit; the old version serves on."""


class StaleCode(ReloadError):
    """A reload swapped, but the serving app or an unchanged module still reaches replaced code."""


def stale_report(chain: str) -> ErrorReport:
    """What the status, the log and the error page say about a stale reload."""
    message = (
        f"the new version still reaches code of the replaced modules: {chain}. Something outside the "
        "reloaded modules holds it (a registry, a cache): undo the registration with on_retire(), import "
        "the module that registered it from the registry's module (then both reload together), or restart "
        "the server"
    )
    return ErrorReport(StaleCode.__name__, message, f"{StaleCode.__name__}: {message}\n", None, None)


def old_code_report(where: list[str], file: str, line: int, stack: tuple[str, ...]) -> ErrorReport:
    """What the status, the log and the error page say about code of a replaced version that runs."""
    message = (
        f"code of a replaced version still runs or is held to run: {'; '.join(where)}. What a version "
        "started or registered outside its own modules runs on after a reload: stop it in an on_retire() "
        "hook (a thread: set an Event its loop checks and join it; a registration: undo it if it is still "
        "yours), keep() it to share one across versions, or restart the server"
    )
    text = "".join(f"  {frame}\n" for frame in stack)
    return ErrorReport(StaleCode.__name__, message, f"Where the old code is (innermost last):\n{text}", file, line)


class Interrupted(BaseException):
    """Raised inside a build thread that ran past its time limit.

    A ``BaseException``, so that the user's ``except Exception`` around a loop does not swallow it.
    """


@dataclass(frozen=True)
class ErrorReport:
    """What the admin endpoint and the log say about a failed reload."""

    type: str
    message: str
    traceback: str
    file: str | None
    line: int | None
    time: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, object]:
        return {
            "type": self.type,
            "message": self.message,
            "traceback": self.traceback,
            "file": self.file,
            "line": self.line,
            "time": self.time,
        }


@dataclass(frozen=True)
class Outcome:
    """The answer to one reload attempt, as the admin endpoint and ``trigger`` see it."""

    ok: bool
    version: int
    reloaded: tuple[str, ...] = ()
    duration_ms: float = 0.0
    error: ErrorReport | None = None
    restart_required: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "version": self.version,
            "reloaded": list(self.reloaded),
            "duration_ms": round(self.duration_ms, 3),
            "error": self.error.as_dict() if self.error else None,
            "restart_required": list(self.restart_required),
        }


def user_cause(exc: BaseException) -> BaseException:
    """What went wrong in the user's code: our wrappers (``BuildError`` from ``ImportStringError``
    from the user's error) say where it broke, the innermost of them says why."""
    cause = exc
    while isinstance(cause, ReloadError) and cause.__cause__ is not None:
        cause = cause.__cause__
    return cause


def report_error(exc: BaseException, is_user_file: Callable[[str], bool]) -> ErrorReport:
    """Describe ``exc``, pointing at the innermost line of the user's own code.

    A build error is usually raised from user code deep inside importlib; the line worth showing
    is the last traceback frame in a watched file, or the location a ``SyntaxError`` carries.
    """
    cause = user_cause(exc)
    # An interrupted build: our message says why (the time limit), the interruption says where.
    named = exc if isinstance(cause, Interrupted) else cause
    file: str | None = None
    line: int | None = None
    if isinstance(cause, SyntaxError) and cause.filename:
        # Raised by hand, a SyntaxError may carry anything there (bytes, a string for the line).
        file = os.fsdecode(cause.filename) if isinstance(cause.filename, str | bytes) else _text(cause.filename)
        line = cause.lineno if type(cause.lineno) is int else None
    else:
        for frame in traceback.extract_tb(cause.__traceback__):
            if is_user_file(frame.filename):
                file, line = frame.filename, frame.lineno
    summary = traceback.TracebackException.from_exception(cause)
    # The import machinery's frames, and ours, say nothing about what to fix: show the user's. An
    # error with no frame outside them is ours to fix, and its whole stack is the only clue.
    outside = [frame for frame in summary.stack if not is_machinery(frame.filename)]
    if outside:
        summary.stack = traceback.StackSummary.from_list(outside)
    text = "".join(summary.format())
    message = _text(named) or type(named).__name__
    hint = next((hint for kind, words, hint in _HINTS if isinstance(cause, kind) and words in message), None)
    return ErrorReport(type(named).__name__, f"{message}: {hint}" if hint else message, text, file, line)


def failure_files(exc: BaseException) -> set[str]:
    """Every file a failure ran through (its causes' tracebacks), and the one a ``SyntaxError``
    could not compile."""
    files: set[str] = set()
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        files.update(frame.filename for frame in traceback.extract_tb(cause.__traceback__))
        if isinstance(cause, SyntaxError) and isinstance(cause.filename, str):
            files.add(cause.filename)
        cause = cause.__cause__ or cause.__context__
    return {name for name in files if not name.startswith("<")}


# Errors whose message alone would leave a developer guessing: what they mean under a reload.
_HINTS: tuple[tuple[type[BaseException], str, str], ...] = (
    (
        ValueError,
        "signal only works in main thread",
        "a module installs a handler, as it is imported, for a signal the app did not handle when the "
        "server started: only the main thread may install one, and a reload imports in a worker thread "
        "(a handler for a signal the first import handled is taken over); install it in the app's "
        "lifespan startup instead, or restart the server once",
    ),
)


def _text(value: object) -> str:
    """``str(value)``, or what stands in for it when the value's ``__str__`` raises."""
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__} that cannot be shown: its __str__ raised>"


_OWN_DIRECTORY = os.path.dirname(os.path.abspath(__file__)) + os.sep
_IMPORTLIB = os.path.dirname(os.path.abspath(importlib.__file__)) + os.sep


def is_machinery(filename: str) -> bool:
    """Frames of the import machinery and of this package: nothing for the user to fix there."""
    return filename.startswith(("<frozen importlib", _OWN_DIRECTORY, _IMPORTLIB))

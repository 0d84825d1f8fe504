"""What the reloads so far came to: counters, the last reload and the last error, typed until they
are written as JSON; and the one log line each outcome gets (INFO for a swap, ERROR for a failure,
WARNING for what needs a restart)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from .._errors import ErrorReport, RestartRequired, StaleCode, old_code_report
from .oldcode import Sighting

logger = logging.getLogger(__name__)

_OLD_CODE_KEPT = 20  # sightings the status lists


class Laps:
    """Where an attempt's time goes: milliseconds per phase, in the order the phases ran."""

    def __init__(self, started: float) -> None:
        self._last = started
        self.ms: dict[str, float] = {}

    def __call__(self, phase: str) -> None:
        """The phase named ``phase`` ends now (it began where the previous one ended)."""
        now = time.perf_counter()
        self.ms[phase] = self.ms.get(phase, 0.0) + (now - self._last) * 1000
        self._last = now


@dataclass(frozen=True)
class ReloadRecord:
    modules: tuple[str, ...]
    changed: tuple[str, ...]
    duration_ms: float
    version: int
    time: float = field(default_factory=time.time)
    # Milliseconds per phase: those of ``duration_ms``, and ``queued`` (from the change's detection
    # to the attempt's start) and ``stale_check`` (after the swap) outside it.
    phases: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "modules": list(self.modules),
            "changed": list(self.changed),
            "duration_ms": round(self.duration_ms, 3),
            "phases_ms": {phase: round(ms, 3) for phase, ms in self.phases.items()},
            "time": self.time,
            "version": self.version,
        }


@dataclass
class History:
    """Every outcome so far; ``failing`` is the latest failure while it is unresolved, for the error
    page (kept only when ``error_page`` is on). Requests read ``failing``: it is an attribute."""

    error_page: bool = False
    failing: ErrorReport | None = None
    reloads: int = 0
    failures: int = 0
    last_reload: ReloadRecord | None = None
    last_error: ErrorReport | None = None
    resolved: bool = False  # a later reload succeeded after last_error
    restart_required: tuple[str, ...] = ()
    old_code: list[Sighting] = field(default_factory=list)  # the latest runs of replaced code
    shutdown_failures: list[dict[str, Any]] = field(default_factory=list)  # the latest ones

    def succeeded(self, record: ReloadRecord) -> None:
        """Counted just before the swap; logged once checked, by ``log_success`` or ``stale``."""
        self.failing = None
        self.reloads += 1
        self.last_reload = record
        self.resolved = self.last_error is not None

    def log_success(self, record: ReloadRecord) -> None:
        """The one line a good reload gets, once it is known not to be stale."""
        logger.info(
            "Reloaded %s: %d module(s) in %.1f ms, now serving version %d",
            ", ".join(record.changed) or "everything (forced)",
            len(record.modules),
            record.duration_ms,
            record.version,
        )
        for reason in self.restart_required:
            logger.warning("Restart required: %s", reason)

    def stale(self, record: ReloadRecord, report: ErrorReport) -> None:
        """The reload just recorded swapped, but old code still answers: a failure, not a success."""
        self._failure(report)
        logger.error(
            "Reloaded %s as version %d, but it is stale: %s",
            ", ".join(record.changed) or "everything (forced)",
            record.version,
            report.message,
        )

    def nothing_to_reload(self, serving: int) -> None:
        """The sources are what version ``serving`` was built from (an editor's undo of a broken
        save): a failed build is over, and nothing needs a restart any more. A stale reload is not
        over: old code is still reached, whatever the sources say."""
        self.restart_required = ()
        error = self.last_error
        if error is None or self.resolved or error.type == StaleCode.__name__:
            return
        self.resolved = True
        self.failing = None
        logger.info("The sources are back to what version %d was built from: the failed reload is over", serving)

    def saw_old_code(self, sightings: list[Sighting]) -> None:
        """Runs of replaced code, for the status (the failure they make is reported by the caller)."""
        self.old_code = [*self.old_code, *sightings][-_OLD_CODE_KEPT:]

    def old_code_ran(self, sighting: Sighting) -> None:
        """Code of a retired version ran after an ok reload: a failure found late, not a quiet one."""
        self.saw_old_code([sighting])
        self._failure(old_code_report([sighting.describe()], sighting.file, sighting.line, sighting.stack))
        logger.warning(
            "Old code %s after its version was replaced: %s. Stop it in on_retire(), keep() it, or restart",
            "is held where it can run" if sighting.held_by else "ran",
            sighting.describe(),
        )

    def start_failed(self, exc: BaseException, report: ErrorReport) -> None:
        """The app failed to import at start (watch mode): the server stays up, and says so."""
        self._failure(report)
        where = f" at {report.file}:{report.line}" if report.file else ""
        logger.error(
            "The app failed to import: %s: %s%s. Requests get an error until the file is fixed; "
            "the app is served as soon as it imports.\n%s",
            report.type,
            report.message,
            where,
            report.traceback.rstrip(),
        )

    def failed(self, exc: BaseException, report: ErrorReport, serving: int) -> None:
        self._failure(report)
        where = f" at {report.file}:{report.line}" if report.file else ""
        log = logger.warning if isinstance(exc, RestartRequired) else logger.error
        log(
            "Reload failed, the old version keeps serving: %s: %s%s (version %d)\n%s",
            report.type,
            report.message,
            where,
            serving,
            report.traceback.rstrip(),
        )

    def _failure(self, report: ErrorReport) -> None:
        self.failures += 1
        self.last_error = report
        self.resolved = False
        if self.error_page:
            self.failing = report

    def shutdown_failed(self, version: int, message: str) -> None:
        """A retired version's lifespan shutdown failed or hung (logged by the caller): its
        resources (connections, files) may not have been released."""
        failure = {"version": version, "message": message, "time": time.time()}
        self.shutdown_failures = [*self.shutdown_failures, failure][-_OLD_CODE_KEPT:]

    def as_dict(self) -> dict[str, Any]:
        error = self.last_error
        return {
            "reloads": self.reloads,
            "failures": self.failures,
            "last_reload": self.last_reload.as_dict() if self.last_reload else None,
            "last_error": {**error.as_dict(), "resolved": self.resolved} if error else None,
            "restart_required": list(self.restart_required),
            "old_code": [sighting.as_dict() for sighting in self.old_code],
            "shutdown_failures": list(self.shutdown_failures),
        }

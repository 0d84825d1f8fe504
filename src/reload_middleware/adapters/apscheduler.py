"""APScheduler (3.x): a scheduler a module starts at import, and jobs a module adds to a scheduler
held elsewhere, are paused before the module is imported anew (whose scheduler and jobs take
over), resumed if that build is discarded, and shut down or removed when the old version retires.
Without this, after three reloads every version's jobs ran, each on its own scheduler thread."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from . import defined_in, instances_of, namespace_values, owned_by

FRAMEWORK = "apscheduler"


def _schedulers() -> list[Any]:
    from apscheduler.schedulers.base import BaseScheduler

    return instances_of(BaseScheduler)


def _split(modules: Mapping[str, ModuleType]) -> tuple[list[Any], list[Any]]:
    """The schedulers ``modules`` started (held by them alone), and the jobs of other schedulers
    that run their code."""
    from apscheduler.schedulers.base import STATE_STOPPED

    held = namespace_values(modules)
    schedulers = _schedulers()
    own = owned_by([scheduler for scheduler in schedulers if id(scheduler) in held], modules)
    jobs = [
        job
        for scheduler in schedulers
        if scheduler not in own and scheduler.state != STATE_STOPPED
        for job in scheduler.get_jobs()
        if defined_in(job.func, modules)
    ]
    return own, jobs


def release(modules: Mapping[str, ModuleType]) -> Callable[[], None]:
    from apscheduler.schedulers.base import STATE_RUNNING

    own, jobs = _split(modules)
    paused = [scheduler for scheduler in own if scheduler.state == STATE_RUNNING]
    for scheduler in paused:
        scheduler.pause()
    paused_jobs = [job for job in jobs if job.next_run_time is not None]
    for job in paused_jobs:
        job.pause()

    def undo() -> None:
        for scheduler in paused:
            scheduler.resume()
        for job in paused_jobs:
            job.resume()

    return undo


def retire(modules: Mapping[str, ModuleType]) -> None:
    from apscheduler.jobstores.base import JobLookupError
    from apscheduler.schedulers.base import STATE_STOPPED

    own, jobs = _split(modules)
    for scheduler in own:
        if scheduler.state != STATE_STOPPED:
            scheduler.shutdown(wait=False)
    for job in jobs:
        with contextlib.suppress(JobLookupError):  # removed meanwhile
            job.remove()

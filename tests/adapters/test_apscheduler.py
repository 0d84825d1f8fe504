"""APScheduler, in-process: a replaced module's scheduler and its jobs on a shared scheduler pause
before it is imported anew, resume on a rollback, and stop at its retirement; a scheduler it only
imported stays as it was."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING, STATE_STOPPED

from reload_middleware.adapters import apscheduler


@pytest.fixture
def shared() -> Iterator[types.ModuleType]:
    module = types.ModuleType("apscheduler_test_shared")
    module.scheduler = scheduler = BackgroundScheduler()  # type: ignore[attr-defined]
    scheduler.start()
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]
    scheduler.shutdown(wait=False)


def jobs_module(shared: types.ModuleType) -> types.ModuleType:
    module = types.ModuleType("apscheduler_test_jobs")
    exec("def tick():\n    pass\n", vars(module))
    module.own = own = BackgroundScheduler()  # type: ignore[attr-defined]
    own.add_job(module.tick, "interval", seconds=60)
    own.start()
    module.shared = shared.scheduler  # type: ignore[attr-defined]
    shared.scheduler.add_job(module.tick, "interval", seconds=60)
    return module


def test_a_replaced_modules_schedulers_and_jobs_pause_then_stop(shared: types.ModuleType) -> None:
    old = jobs_module(shared)
    undo = apscheduler.release({"jobs": old})
    assert (old.own.state, shared.scheduler.state) == (STATE_PAUSED, STATE_RUNNING)
    assert [job.next_run_time for job in shared.scheduler.get_jobs()] == [None]
    undo()  # the build was discarded: all runs again
    assert old.own.state == STATE_RUNNING
    assert [job.next_run_time is not None for job in shared.scheduler.get_jobs()] == [True]

    new = jobs_module(shared)
    apscheduler.release({"jobs": old})
    apscheduler.retire({"jobs": old})  # the new version serves, the old one retires
    assert (old.own.state, shared.scheduler.state) == (STATE_STOPPED, STATE_RUNNING)
    assert [job.func for job in shared.scheduler.get_jobs()] == [new.tick]  # only the new one's job
    new.own.shutdown(wait=False)

"""What happens to a version once a newer one serves: it drains, then retires.

Retiring stops its lifespan, unregisters the ``atexit`` callbacks its build registered (each holds
the version alive), runs its modules' ``on_retire`` hooks, empties framework caches that
key on functions (left alone, FastAPI's caches hold every old module graph alive: +15 MB a reload
on a 190-module app), hands its code to ``OldCode``, which reports any run of it from then on, and
its namespaces to the leak tracker, which reports any that stay referenced.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from .. import adapters
from .._config import Config
from .._handover import run_module_hooks, unregister_exit_callbacks
from .leaks import LeakTracker
from .oldcode import OldCode
from .versions import AppVersion, Stopping, VersionSet

logger = logging.getLogger(__name__)

# When max_versions is reached, how long the oldest version's connections get to close.
_EVICT_WAIT = 1.0
_EVICT_POLL = 0.02


class Stopper(Protocol):
    def stop_soon(self, version: AppVersion) -> Stopping: ...


class Retirer:
    """Retires draining versions: once idle, at ``retire_timeout``, or to stay within ``max_versions``.

    A version's lifespan shutdown runs on the server's event loop while the worker goes on: its
    modules retire once it ended (at most ``startup_timeout`` later). A shutdown that hangs never
    holds a reload back; it is reported (``on_shutdown_failure``) when it fails or times out.
    """

    def __init__(
        self,
        versions: VersionSet,
        runtime: Stopper,
        leaks: LeakTracker,
        config: Config,
        old_code: OldCode,
        on_shutdown_failure: Callable[[int, str], None],
    ) -> None:
        self._versions = versions
        self._runtime = runtime
        self._leaks = leaks
        self._config = config
        self._old_code = old_code
        self._on_shutdown_failure = on_shutdown_failure

    def retire_ready(self, wait: float = 0.0) -> None:
        """Retire the draining versions whose time has come; ``wait``: how long each one's
        shutdown may take before it is left to finish later (for a reload's answer, which reports
        what the retirement stopped)."""
        now = time.monotonic()
        for version in self._versions.draining():
            if version.stopping is not None:  # retiring already: its shutdown is not waited for again
                self.retire(version)
            elif version.in_flight == 0:
                self.retire(version, wait)
            elif version.retire_by is not None and now >= version.retire_by:
                logger.warning(
                    "version %d still has %d connection(s) after %g s (retire_timeout): closing them",
                    version.number,
                    version.in_flight,
                    self._config.retire_timeout,
                )
                version.close_connections()
                self.retire(version, wait)

    def make_room(self) -> None:
        """At ``max_versions``, the oldest draining version goes now: its long-lived connections
        (websockets, streams) are closed rather than holding every later reload back."""
        while len(self._versions.live) >= self._config.max_versions:
            draining = self._versions.draining()
            if not draining:
                return
            oldest = draining[0]
            closed = oldest.close_connections()
            logger.warning(
                "%d versions are live (max_versions=%d): closing the %d long-lived connection(s) of version %d",
                len(self._versions.live),
                self._config.max_versions,
                closed,
                oldest.number,
            )
            oldest.wait_empty(_EVICT_WAIT, _EVICT_POLL)
            if not self.retire(oldest):
                return  # its shutdown still runs: it goes when that ends, no reload waits for it

    def retire(self, version: AppVersion, wait: float = 0.0) -> bool:
        """Stop the version's lifespan, then retire its modules (hooks, caches, leak check);
        ``False`` while its shutdown still runs after ``wait`` seconds (asked again later)."""
        if version.stopping is None:
            version.stopping = self._runtime.stop_soon(version)
        if not version.stopping.done.wait(wait):
            return False
        if version.stopping.error is not None:
            logger.warning("lifespan shutdown of retired version %d failed: %s", version.number, version.stopping.error)
            self._on_shutdown_failure(version.number, version.stopping.error)
        self._versions.remove(version)
        unregister_exit_callbacks(version.exit_callbacks)
        version.exit_callbacks = []
        replaced, version.replaced = version.replaced, {}
        run_module_hooks(replaced.values())
        adapters.retire(replaced)  # what its modules started (schedulers, exporters) stops
        adapters.retired()  # caches keyed on its functions (FastAPI's, typing's) let go of them
        # From here on, none of its code should run (its own hooks and lifespan have ended).
        self._old_code.retire(version.number, replaced, lambda: version.in_flight > 0)
        self._leaks.track(version.number, replaced)
        version.app = version.lifespan_state = version.lifespan = None  # let the old module graph go
        logger.info("version %d retired", version.number)
        return True

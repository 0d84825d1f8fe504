"""Building a version's modules: the app's first import, and a group's import anew, each with what
its modules registered on the way (``on_retire`` hooks, ``atexit`` callbacks, framework registries,
logging handlers) so that a discarded build takes all of it back with it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Set
from dataclasses import dataclass, field
from typing import Any

from .. import adapters
from .._errors import BuildError, ImportStringError
from .._handover import capturing_exit_callbacks, recording_hooks, run_hooks, unregister_exit_callbacks
from .._importer import load_app
from .effects import discard_effects, recording_effects, release_effects
from .loader import GroupLoad, ImportRecorder, LoadedGroup


@dataclass
class FirstImport:
    """The app as the server's own import of it made it, and what that import did."""

    app: Any  # None when the import failed
    imports: ImportRecorder
    exit_callbacks: list[Callable[..., object]] = field(default_factory=list)
    failure: ImportStringError | None = None


def import_first(import_string: str, *, factory: bool, survive: bool = False) -> FirstImport:
    """Import the app for the first time, recording who imports whom and which files each module reads.

    Raises:
        ImportStringError: the import failed, unless ``survive`` and the failure is inside the
            app's modules (a broken file, which an edit fixes, not a wrong import string): then
            the ``FirstImport`` has no app and carries the ``failure``.
    """
    with ImportRecorder() as imports, capturing_exit_callbacks() as exit_callbacks, recording_effects():
        try:
            app = load_app(import_string, factory=factory)
        except ImportStringError as exc:
            if not survive or exc.__cause__ is None:
                raise
            return FirstImport(None, imports, exit_callbacks, exc)
    return FirstImport(app, imports, exit_callbacks)


def build_group(
    load: GroupLoad, group: Set[str], changed_modules: Set[str], load_app: Callable[[], Any]
) -> LoadedGroup:
    """Import ``group`` anew through ``load``; ``sys.modules`` is untouched if this raises ``BuildError``.

    Before the import, framework registries give up what the old modules declared (the new ones
    declare it again); whatever the discarded modules registered is undone if the build fails,
    now, or at ``load.restore()`` if it is rolled back later.
    """
    old = {name: sys.modules[name] for name in group if name in sys.modules}
    restore_registries = adapters.release(old)
    restore_effects = release_effects(old.values())  # the new modules add their own handlers
    with (
        recording_hooks() as registered,
        capturing_exit_callbacks() as exit_callbacks,
        recording_effects() as affected,
    ):
        try:
            loaded = load.run(load_app, changed_modules | adapters.imported_at_start(group))
        except BuildError:
            run_hooks(registered)  # undo what the discarded modules registered at import
            unregister_exit_callbacks(exit_callbacks)
            discard_effects(affected)
            restore_effects()
            restore_registries()
            raise
    load.after_restore.append(lambda: run_hooks(registered))
    load.after_restore.append(lambda: discard_effects(affected))
    load.after_restore.append(restore_effects)
    load.after_restore.append(restore_registries)
    load.after_restore.append(lambda: unregister_exit_callbacks(exit_callbacks))
    loaded.exit_callbacks = exit_callbacks
    return loaded

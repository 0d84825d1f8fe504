"""Which directories hold the project's code, and which of them the OS watches.

By default, as ``uvicorn --reload`` does, the project root: the directory that holds the app's
top-level package (a Django project's sibling apps are in it). The directories are kept as the
import system has them and resolved again on every sweep, so that a release switch
(``current -> releases/v2``) is followed.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from .._config import TEMPLATE_GLOBS, Config
from .._errors import ConfigError
from .._files import environment_dirs, module_location
from .filters import SourceFilter

logger = logging.getLogger(__name__)


class WatchedDirs:
    def __init__(self, config: Config, root_module: str) -> None:
        self._config = config
        self._root_module = root_module
        self._given = config.watch_dirs or project_root(root_module)
        self.resolved = resolve_dirs(self._given, root_module)
        self.filter = SourceFilter(self.resolved, config.exclude, config.include)
        self._root_file = os.path.realpath(module_location(root_module)[0] or "")
        self.observing: tuple[Path, ...] = ()  # what the running watcher was given
        self.moved = False  # the watcher should be given other directories

    def follow(self) -> bool:
        """Resolve the directories again; ``True`` if they now lie elsewhere (a release switch)."""
        dirs = resolve_dirs(self._given, self._root_module)
        if dirs == self.resolved:
            return False
        logger.info("The watched directories now resolve to %s", ", ".join(map(str, dirs)))
        self.resolved = dirs
        self.filter = SourceFilter(dirs, self._config.exclude, self._config.include)
        self.moved = True
        return True

    def observed(self, module_paths: Iterable[str]) -> tuple[Path, ...]:
        """The directories the OS watches: those given (``watch_dirs``); by default, within the
        project root, the top-level packages the app imports from it and a ``templates``
        directory, or the root itself when a module lies directly in it (a single-file app).

        Not the whole root: it often holds files written on every request (a log, a SQLite
        database), whose events would keep the watcher busy for nothing.
        """
        if self._config.watch_dirs:
            return self.resolved
        observed: dict[Path, None] = {}
        for path in [*module_paths, self._root_file, *self._included_in_roots()]:
            for root in self.resolved:
                parts = Path(path).relative_to(root).parts if path.startswith(f"{root}{os.sep}") else ()
                if len(parts) == 1:
                    return self.resolved
                if parts:
                    observed[root / parts[0]] = None
        if not observed:
            return self.resolved
        # Project-level templates (Django's ``DIRS``, ``Jinja2Templates(directory="templates")``)
        # lie in the root beside the packages, by convention in ``templates/``.
        for root in self.resolved:
            if (root / "templates").is_dir():
                observed[root / "templates"] = None
        return tuple(observed)

    def _included_in_roots(self) -> list[str]:
        """Files directly in a project root that the user's ``include`` patterns name (``.env``;
        templates are looked for in packages and ``templates/``): the root is watched for them,
        as for a module that lies in it."""
        patterns = [pattern for pattern in self._config.include if pattern not in TEMPLATE_GLOBS]
        found: list[str] = []
        for root in self.resolved if patterns else ():
            with contextlib.suppress(OSError), os.scandir(root) as entries:
                found.extend(
                    entry.path
                    for entry in entries
                    if entry.is_file() and any(fnmatch.fnmatch(entry.name, pattern) for pattern in patterns)
                )
        return found

    def watch(self, module_paths: Iterable[str]) -> tuple[Path, ...]:
        """What to give a new watcher now (and remember it); said in the log, as uvicorn says it."""
        observing = self.observed(module_paths)
        if observing != self.observing:
            logger.info("Will watch for changes in these directories: %s", sorted(map(str, observing)))
        self.observing = observing
        self.moved = False
        return self.observing

    def notice_imports(self, module_paths: Iterable[str]) -> None:
        """Modules newly imported (by a reload, or lazily): one outside the watched directories (a
        package the app did not import before) is to be watched too."""
        observing = tuple(f"{directory}{os.sep}" for directory in self.observing)
        if any(not path.startswith(observing) for path in module_paths):
            self.moved = True


def project_root(root_module: str) -> tuple[Path, ...]:
    """The directory (the ``sys.path`` entry) that holds the app's top-level package or module, as
    the import system has it: symlinks are resolved later, again on sweeps."""
    top = root_module.split(".")[0]
    file, locations = module_location(top)
    if locations:
        return tuple(dict.fromkeys(Path(os.path.dirname(os.path.abspath(location))) for location in locations))
    if file is None:
        raise ConfigError(f"Cannot tell where module {top!r} comes from: pass watch_dirs")
    return (Path(os.path.dirname(os.path.abspath(file))),)


def resolve_dirs(dirs: tuple[Path, ...], root_module: str) -> tuple[Path, ...]:
    """``dirs`` resolved; installed code is never watched."""
    resolved = tuple(Path(os.path.realpath(directory)) for directory in dirs)
    installed = environment_dirs()
    for directory in resolved:
        if (str(directory) + os.sep).startswith(installed):
            raise ConfigError(
                f"{root_module!r} is installed in {directory}, which is never watched: "
                "pass watch_dirs (or RELOAD_MIDDLEWARE_WATCH_DIRS) pointing at its source"
            )
    return resolved

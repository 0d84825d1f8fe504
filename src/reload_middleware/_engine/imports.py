"""What a module imports, read two ways, because neither alone is complete: the import statements
of its source (they see ``from x import CONSTANT``; read again only when the file changed) and its
live globals (they see ``x = importlib.import_module(...)`` and names bound by any other route)."""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from types import FunctionType, ModuleType


@dataclass(frozen=True)
class TrackedModule:
    name: str
    path: str
    is_package: bool
    is_extension: bool
    reloadable: bool


# `import a.b as c, d` and `from .x import (y, z)`: statement starts only, anywhere at the start of
# a line; an import inside a function is read too, which widens a group at worst.
_IMPORT_RE = re.compile(
    r"^[ \t]*(?:from[ \t]+(?P<base>\.*[\w.]*)[ \t]+import[ \t]+(?P<names>\([^)]*\)|[^\n#;]*)"
    r"|import[ \t]+(?P<modules>[^\n#;]+))",
    re.MULTILINE,
)
_NAME_RE = re.compile(r"[A-Za-z_][\w.]*")


def scan_imports(source: str, module: str, is_package: bool) -> set[str]:
    """Absolute names of every module and ``from`` target that ``source`` may import."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for match in _IMPORT_RE.finditer(source):
        if match["modules"] is not None:
            for clause in match["modules"].split(","):
                name = clause.split(" as ")[0].strip().rstrip("\\").strip()
                if _NAME_RE.fullmatch(name):
                    found.add(name)
            continue
        base = match["base"]
        try:
            target = importlib.util.resolve_name(base, package) if base.startswith(".") else base
        except (ImportError, ValueError):
            continue
        if not target:
            continue
        found.add(target)
        names = re.sub(r"#[^\n]*", "", match["names"]).strip("()")
        for clause in names.split(","):
            words = clause.split()
            if words and words[0].isidentifier():
                found.add(f"{target}.{words[0]}")
    return found


class ImportReader:
    """Reads the imports of tracked modules."""

    def __init__(self) -> None:
        # Scanning sources is the costly part: cache it per file content, as its stat tells it
        # (name -> (mtime, ctime, size, inode), imports): a reload re-executes the importers of
        # an edited module, but their sources did not change.
        self._scan_cache: dict[str, tuple[tuple[int, int, int, int], set[str]]] = {}

    def read(self, tracked: TrackedModule, module: ModuleType | None) -> set[str]:
        """The modules ``tracked`` imports: from its source, and from ``module``'s globals."""
        found = set(self._scan(tracked))
        if module is not None:
            found |= _bound_in(tracked.name, module)
        return found

    def _scan(self, tracked: TrackedModule) -> set[str]:
        """The imports in a module's source, read again only when the file changed."""
        if tracked.is_extension:
            return set()
        try:
            stat = os.stat(tracked.path)
        except OSError:
            return set()
        identity = (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino)
        cached = self._scan_cache.get(tracked.name)
        if cached is not None and cached[0] == identity:
            return cached[1]
        try:
            with open(tracked.path, encoding="utf-8", errors="replace") as file:
                found = scan_imports(file.read(), tracked.name, tracked.is_package)
        except OSError:
            found = set()
        self._scan_cache[tracked.name] = (identity, found)
        return found


def _bound_in(name: str, module: ModuleType) -> set[str]:
    """The modules whose modules, classes or functions the globals of ``module`` (``name``) hold."""
    found: set[str] = set()
    submodule_prefix = name + "."
    for attribute, value in list(vars(module).items()):
        if isinstance(value, ModuleType):
            # The import machinery binds every imported submodule on its package, and
            # rebinds it on reload: that binding alone does not make the package an importer.
            if value.__name__ != submodule_prefix + attribute:
                found.add(value.__name__)
        elif isinstance(value, (type, FunctionType)):
            found.add(value.__module__)
    return found

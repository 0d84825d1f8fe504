"""The package's shape, checked: imports go one way through the layers, each folder is used only
through what its ``__init__`` exports, classes stay small, and production imports stay cheap.

Layers, lowest first (a module may import its own folder and lower layers, never a higher one, and
``_engine`` and ``_watch`` never each other): the base modules, ``adapters``, ``_engine`` and
``_watch``, ``_pipeline``, ``_admin``, ``_middleware``, then the entry points.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import reload_middleware

PACKAGE = Path(reload_middleware.__file__).parent
NAME = "reload_middleware"

BASE = {"_config", "_errors", "_files", "_handover", "_importer", "_local", "_threads", "_types"}
LAYERS: dict[str, int] = {
    **dict.fromkeys(BASE, 0),
    "adapters": 1,
    "_engine": 2,
    "_watch": 2,
    "_pipeline": 3,
    "_admin": 4,
    "_middleware": 5,
    "_reloadable": 6,
    "__init__": 7,
    "_cli": 8,
    "__main__": 9,
}
FOLDERS = {"adapters", "_engine", "_watch", "_pipeline", "_admin", "_middleware", "_cli"}
MAX_CLASS_LINES = 200
# Neither is needed to serve an app with reloading off, and together they cost 85-110 ms to import.
HEAVY = ("anyio", "watchfiles", "httpx", "click", "uvicorn")
SERVER_PARTS = tuple(f"{NAME}.{part}" for part in ("_engine", "_watch", "_pipeline", "_admin", "_middleware"))


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name relative to it (``_pipeline.queue``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def unit_of(module: str) -> str:
    """The layer unit a module belongs to: its folder, or the module itself at the top."""
    return module.split(".")[0]


def imports_of(module: str, path: Path) -> list[tuple[str, list[str]]]:
    """Each import of this package's modules in ``path``: the module imported (relative to the
    package) and the names taken from it. Imports inside functions count too."""
    is_package = path.name == "__init__.py"
    package = module.split(".") if is_package else module.split(".")[:-1]
    if module == "__init__":
        package = []
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.startswith(NAME + "."):
                target = node.module[len(NAME) + 1 :]
            else:
                continue
            found.append((target or "__init__", [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(alias.name[len(NAME) + 1 :], []) for alias in node.names if alias.name.startswith(NAME + ".")]
    return found


def imported_modules(module: str, path: Path) -> list[str]:
    """The modules ``module`` imports: ``from .. import adapters`` imports ``adapters``, and
    ``from .. import __version__`` the package's ``__init__``."""
    known = modules()
    found = []
    for target, names in imports_of(module, path):
        submodules = [name if target == "__init__" else f"{target}.{name}" for name in names]
        found += [name for name in submodules if name in known] or [target]
    return found


def test_every_module_is_in_a_layer() -> None:
    assert {unit_of(module) for module in modules()} == set(LAYERS)


def test_imports_go_one_way_through_the_layers() -> None:
    wrong = []
    for module, path in modules().items():
        own = unit_of(module)
        for imported in imported_modules(module, path):
            other = unit_of(imported)
            if other != own and LAYERS[other] >= LAYERS[own] and not (own in BASE and other in BASE):
                wrong.append(f"{module} imports {imported}")
    assert not wrong, "\n".join(wrong)


def test_folders_are_used_only_through_what_they_export() -> None:
    """Another folder imports a folder's package, never its modules, and only names in its
    ``__all__``; and everything in ``__all__`` is used by some other part of the package."""
    used: dict[str, set[str]] = {folder: set() for folder in FOLDERS}
    reached_inside = []
    for module, path in modules().items():
        for target, names in imports_of(module, path):
            folder = unit_of(target)
            if folder not in FOLDERS or folder == unit_of(module):
                continue
            if target != folder:
                reached_inside.append(f"{module} imports {target}")
            used[folder] |= set(names)
    assert not reached_inside, "\n".join(reached_inside)
    for folder in FOLDERS - {"adapters", "_cli"}:  # those two are reached as modules (adapters.release, main)
        exported = set(vars(__import__(f"{NAME}.{folder}", fromlist=["__all__"])).get("__all__", ()))
        assert used[folder] == exported, folder


def test_no_class_is_over_two_hundred_lines() -> None:
    long = []
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_CLASS_LINES:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert not long, "\n".join(long)


def loaded_after(code: str, tmp_path: Path) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code`` (reloading off)."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("RELOAD_MIDDLEWARE")}
    environment["PYTHONPATH"] = str(tmp_path)
    script = textwrap.dedent(code) + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))\n"
    finished = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=60, check=True
    )
    return set(finished.stdout.split())


def heavy_or_server(loaded: set[str]) -> list[str]:
    return sorted(
        name
        for name in loaded
        if name.split(".")[0] in HEAVY or any(name == part or name.startswith(part + ".") for part in SERVER_PARTS)
    )


@pytest.mark.parametrize(
    "code",
    [
        "from reload_middleware import reloadable",
        "from reload_middleware import keep, on_retire",
        "from reload_middleware import reloadable\napp = reloadable('plain_app:app')",
    ],
)
def test_reloading_off_imports_no_engine_and_no_dependency(code: str, tmp_path: Path) -> None:
    (tmp_path / "plain_app.py").write_text("async def app(scope, receive, send):\n    pass\n")
    assert heavy_or_server(loaded_after(code, tmp_path)) == []


def test_the_middlewares_are_still_importable_by_name(tmp_path: Path) -> None:
    loaded = loaded_after("from reload_middleware import ReloadMiddleware, WSGIReloadMiddleware", tmp_path)
    assert f"{NAME}._middleware" in loaded


def test_trigger_imports_no_server_module(tmp_path: Path) -> None:
    # httpx is its client (and httpx imports click for its own command line): only the server's
    # parts, and the server's dependencies, must stay out.
    loaded = loaded_after("import reload_middleware._cli.trigger", tmp_path)
    server = [name for name in heavy_or_server(loaded) if name.split(".")[0] not in ("httpx", "click")]
    assert not server, server

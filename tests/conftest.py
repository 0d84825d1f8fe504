"""Fixtures: app trees written into tmp_path under unique package names, and real uvicorn servers."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import AppTree, Server, ServerFactory


@pytest.fixture(autouse=True)
def private_run_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Triggers and the local credential of this test's servers (and of this process) live here,
    never in the real user's directories."""
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    return run


@pytest.fixture
def tree(tmp_path: Path) -> AppTree:
    return AppTree(tmp_path)


@pytest.fixture
def imported_tree(tree: AppTree) -> Iterator[AppTree]:
    """A tree importable in this process; its modules leave ``sys.modules`` afterwards."""
    sys.path.insert(0, str(tree.root))
    yield tree
    sys.path.remove(str(tree.root))
    for name in [name for name in sys.modules if name == tree.name or name.startswith(tree.name + ".")]:
        del sys.modules[name]


@pytest.fixture
def serve(tree: AppTree) -> Iterator[ServerFactory]:
    """Start servers for ``tree``; each is stopped (and must not be left running) after the test."""
    started: list[Server] = []

    def start(
        import_string: str = "PKG.asgi:app",
        *,
        env: dict[str, str] | None = None,
        options: list[str] | None = None,
        ready_path: str = "/__reload",
        command: list[str] | None = None,
        dual_stack: bool = False,
        bind: tuple[str, int] | None = None,
    ) -> Server:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("RELOAD_MIDDLEWARE")}
        environment.update({"RELOAD_MIDDLEWARE": "1", "PYTHONPATH": str(tree.root), "PYTHONDONTWRITEBYTECODE": ""})
        environment.pop("PYTHONDONTWRITEBYTECODE")
        environment.update(env or {})
        server = Server(
            import_string.replace("PKG", tree.name), tree.root, environment, options or [], command, dual_stack, bind
        )
        started.append(server)
        server.wait_ready(ready_path)
        return server

    yield start
    for server in started:
        server.stop()

"""Files read at run time by project code: dependencies of the module whose code read them."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from reload_middleware._engine.reads import ReadRecorder, RunTimeReads

PROJECT = "runtime_reads_project.settings"


@pytest.fixture
def wakes() -> list[None]:
    return []


@pytest.fixture
def env(tmp_path: Path) -> Path:
    """A file edited by someone else: written before this process starts recording."""
    path = tmp_path / ".env"
    path.write_text("GREETING=one")
    return path


@pytest.fixture
def reads(tmp_path: Path, env: Path, wakes: list[None]) -> Iterator[RunTimeReads]:
    recorder = RunTimeReads((f"{tmp_path}/",), lambda name: name == PROJECT, lambda: wakes.append(None))
    recorder.start()
    yield recorder
    recorder.stop()


def project_module() -> types.ModuleType:
    """A project module whose function reads a file, as a cached settings function does."""
    module = types.ModuleType(PROJECT)
    exec("def load(path):\n    with open(path) as file:\n        return file.read()\n", vars(module))
    return module


def test_a_file_project_code_reads_is_a_dependency_of_its_module(
    env: Path, reads: RunTimeReads, wakes: list[None]
) -> None:
    module = project_module()
    module.load(env)
    module.load(env)  # known already: no news
    assert (reads.take()[0], len(wakes)) == ({PROJECT: {str(env)}}, 1)
    module.load(env)
    assert reads.take()[0] == {}
    reads.forget([PROJECT])  # its module was executed anew: its reads count again
    module.load(env)
    assert reads.take()[0] == {PROJECT: {str(env)}}


def test_files_outside_the_roots_written_by_the_process_or_read_by_libraries_are_not(
    tmp_path: Path, reads: RunTimeReads
) -> None:
    written = tmp_path / "upload.bin"
    written.write_text("data")  # this process wrote it: its data, not a source
    library_read = tmp_path / "library.txt"
    library_read.write_text("x")
    module = project_module()
    module.load(written)
    module.load(__file__)  # outside the roots
    library_read.read_text()  # no project frame on the stack
    assert reads.take()[0] == {}


def test_a_directory_listed_at_import_is_read_but_not_the_import_systems_own_look(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (tmp_path / "lister.py").write_text(f"import os\nNAMES = os.listdir({str(plugins)!r})\n")
    (tmp_path / "fresh_package_dir").mkdir()  # a directory the import system lists to find a module in it
    (tmp_path / "fresh_package_dir" / "found.py").write_text("")
    spec = importlib.util.spec_from_file_location("lister", tmp_path / "lister.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(tmp_path / "fresh_package_dir"))
    try:
        with ReadRecorder() as recorder:
            spec.loader.exec_module(module)
            importlib.import_module("found")
    finally:
        sys.path.remove(str(tmp_path / "fresh_package_dir"))
        sys.modules.pop("found", None)
    assert recorder.reads["lister"] == {str(plugins)}
    listed_by_finder = str(tmp_path / "fresh_package_dir")
    assert all(listed_by_finder not in paths for paths in recorder.reads.values())

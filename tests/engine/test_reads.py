"""Files read at run time by project code: dependencies of the module whose code read them."""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from reload_middleware._engine.reads import RunTimeReads

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
    assert (reads.take(), len(wakes)) == ({PROJECT: {str(env)}}, 1)
    module.load(env)
    assert reads.take() == {}
    reads.forget([PROJECT])  # its module was executed anew: its reads count again
    module.load(env)
    assert reads.take() == {PROJECT: {str(env)}}


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
    assert reads.take() == {}

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from reload_middleware._local import private_directory
from reload_middleware._pipeline.trigger import SharedTrigger


@pytest.fixture(autouse=True)
def temporary_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def test_the_directory_is_created_private(temporary_root: Path) -> None:
    directory = private_directory()
    assert directory.parent == temporary_root
    assert directory.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("mode", [0o755, 0o770, 0o777])
def test_a_directory_others_can_enter_is_never_used_and_a_private_one_is(
    temporary_root: Path, mode: int, caplog: pytest.LogCaptureFixture
) -> None:
    planted = temporary_root / f"reload-middleware-{os.getuid()}"
    planted.mkdir()
    planted.chmod(mode)
    directory = private_directory()
    assert directory == temporary_root / "home" / ".cache" / "reload-middleware"
    assert directory.stat().st_mode & 0o777 == 0o700
    assert "not a private directory" in caplog.text


def test_a_symlink_planted_in_its_place_is_never_used(temporary_root: Path) -> None:
    elsewhere = temporary_root / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (temporary_root / f"reload-middleware-{os.getuid()}").symlink_to(elsewhere)
    assert private_directory() == temporary_root / "home" / ".cache" / "reload-middleware"


def test_the_trigger_file_is_removed_when_its_server_stops() -> None:
    trigger = SharedTrigger("app.main:app")
    trigger.fire(force=False)
    assert trigger.path.exists()
    trigger.remove()
    assert not trigger.path.exists()
    trigger.remove()  # twice is fine: every worker of a server removes it


def test_a_signal_reaches_other_workers_once_and_not_its_sender() -> None:
    sender = SharedTrigger("app.main:app")
    receiver = SharedTrigger("app.main:app")
    assert sender.path == receiver.path
    assert receiver.take() is None
    sender.fire(force=True)
    assert sender.take() is None  # its own signal
    signal = receiver.take()
    assert signal is not None
    assert signal.force is True
    assert receiver.take() is None  # once
    assert SharedTrigger("other.main:app").path != sender.path


def test_a_garbled_trigger_file_is_ignored() -> None:
    trigger = SharedTrigger("app.main:app")
    trigger.path.write_text("{not json")
    assert trigger.take() is None

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from reload_middleware import ConfigError
from reload_middleware._trigger import SharedTrigger, private_directory


@pytest.fixture(autouse=True)
def temporary_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_the_directory_is_created_private(temporary_root: Path) -> None:
    directory = private_directory()
    assert directory.parent == temporary_root
    assert directory.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("mode", [0o755, 0o770, 0o777])
def test_a_directory_others_can_enter_is_refused(temporary_root: Path, mode: int) -> None:
    directory = temporary_root / f"reload-middleware-{os.getuid()}"
    directory.mkdir()
    directory.chmod(mode)
    with pytest.raises(ConfigError, match="not a private directory"):
        private_directory()


def test_a_symlink_planted_in_its_place_is_refused(temporary_root: Path) -> None:
    elsewhere = temporary_root / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (temporary_root / f"reload-middleware-{os.getuid()}").symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="not a private directory"):
        private_directory()


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

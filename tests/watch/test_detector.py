"""The change detector: content fingerprints decide what changed, and what stays pending."""

from __future__ import annotations

import os
import time
from pathlib import Path

from reload_middleware._watch import ChangeDetector


def _detector(*paths: Path) -> ChangeDetector:
    detector = ChangeDetector()
    detector.track(str(path) for path in paths)
    return detector


def test_touch_without_change_is_absorbed(tmp_path: Path) -> None:
    path = tmp_path / "mod.py"
    path.write_text("X = 1\n")
    detector = _detector(path)
    os.utime(path, ns=(0, 10**18))
    detector.notice([str(path)])
    assert detector.dirty
    assert detector.take_changes() == {}
    assert not detector.dirty
    detector.notice([str(path)])
    assert detector.take_changes() == {}  # the new mtime was remembered: no hashing again


def test_content_change_stays_pending_until_committed(tmp_path: Path) -> None:
    path = tmp_path / "mod.py"
    path.write_text("X = 1\n")
    detector = _detector(path)
    path.write_text("X = 2\n")
    detector.notice([str(path)])
    first = detector.take_changes()
    assert list(first) == [str(path)]
    # A failed reload commits nothing: the next check (say, after another file is fixed) retries it.
    detector.abort()
    assert list(detector.take_changes()) == [str(path)]
    detector.commit(first)
    detector.notice([str(path)])
    assert detector.take_changes() == {}


def test_reverting_to_the_loaded_content_is_no_change(tmp_path: Path) -> None:
    path = tmp_path / "mod.py"
    path.write_text("X = 1\n")
    detector = _detector(path)
    path.write_text("X = 2\n")
    path.write_text("X = 1\n")
    detector.notice([str(path)])
    assert detector.take_changes() == {}


def test_deletion_is_a_change_and_untracked_files_are_not(tmp_path: Path) -> None:
    path = tmp_path / "mod.py"
    path.write_text("X = 1\n")
    other = tmp_path / "new.py"
    other.write_text("")
    detector = _detector(path)
    path.unlink()
    detector.notice([str(path), str(other)])
    assert detector.take_changes() == {str(path): None}


def test_sweep_notices_by_stat_alone(tmp_path: Path) -> None:
    paths = [tmp_path / f"m{i}.py" for i in range(3)]
    for path in paths:
        path.write_text("X = 1\n")
    detector = _detector(*paths)
    detector.sweep()
    assert not detector.dirty
    paths[1].write_text("X = 22\n")
    detector.sweep()
    assert detector.dirty
    assert list(detector.take_changes()) == [str(paths[1])]


def test_a_save_during_a_reload_stays_pending_after_that_reload(tmp_path: Path) -> None:
    path = tmp_path / "mod.py"
    path.write_text("X = 1\n")
    detector = _detector(path)
    path.write_text("X = 2\n")
    detector.notice([str(path)])
    taken = detector.take_changes()
    path.write_text("X = 33\n")  # saved while the reload that took X = 2 imports
    detector.notice([str(path)])
    detector.commit(taken)
    assert detector.dirty
    assert list(detector.take_changes()) == [str(path)]


def test_a_deferred_change_stays_pending_without_asking_for_a_reload(tmp_path: Path) -> None:
    path = tmp_path / "mod.py"
    path.write_text("X = 1\n")
    detector = _detector(path)
    path.write_text("X = 2\n")
    detector.notice([str(path)])
    detector.defer(detector.take_changes())
    assert not detector.dirty
    assert detector.pending() == {str(path)}


def test_a_file_edited_between_its_read_and_its_tracking_is_a_change(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("GREETING=one\n")
    read_at = time.time_ns()  # the app read it then
    env.write_text("GREETING=two, saved before anything watched it\n")
    detector = ChangeDetector()
    detector.track_read(str(env), read_at)
    assert detector.dirty
    assert list(detector.take_changes()) == [str(env)]


def test_a_file_unchanged_since_its_read_is_known_as_read(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("GREETING=one\n")
    time.sleep(0.1)  # the app reads it well after it was written
    detector = ChangeDetector()
    detector.track_read(str(env), time.time_ns())
    assert not detector.dirty
    detector.notice([str(env)])
    assert detector.take_changes() == {}


def test_a_directory_is_known_by_its_names(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "alpha.py").write_text("")
    detector = ChangeDetector()
    detector.track([str(plugins)])
    (plugins / "beta.py").write_text("")
    detector.notice([str(plugins)])
    assert list(detector.take_changes()) == [str(plugins)]

from __future__ import annotations

import os
import sysconfig
import time
from pathlib import Path

import pytest
import watchfiles
from harness import wait_until

from reload_middleware._watch.inotify import available as inotify_available
from reload_middleware._watch.watcher import ChangeDetector, SourceFilter, Watcher


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


def test_filter_covers_sources_below_the_roots_minus_exclusions(tmp_path: Path) -> None:
    source_filter = SourceFilter([tmp_path], ["*_test.py", "*/migrations/*"])
    root = str(tmp_path)
    assert source_filter.covers(f"{root}/app/main.py")
    assert not source_filter.covers(f"{root}/app/main_test.py")
    assert not source_filter.covers(f"{root}/app/migrations/0001.py")
    assert not source_filter.covers(f"{root}/app/__pycache__/main.cpython-311.py")
    assert not source_filter.covers("/elsewhere/main.py")
    assert source_filter(watchfiles.Change.modified, f"{root}/ext.so")
    assert not source_filter(watchfiles.Change.modified, f"{root}/notes.txt")


def test_filter_never_covers_installed_code() -> None:
    site_packages = sysconfig.get_paths()["purelib"]
    source_filter = SourceFilter([Path("/")], [])
    assert not source_filter.covers(os.path.join(site_packages, "starlette", "applications.py"))
    assert not source_filter.covers(os.__file__)


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


def test_a_watcher_whose_callback_fails_restarts_and_keeps_delivering(tmp_path: Path) -> None:
    seen: list[set[str] | None] = []

    def on_change(paths: set[str] | None) -> None:
        seen.append(paths)
        if paths and len([p for p in seen if p]) == 1:
            raise SystemExit("a callback that fails once")

    watcher = Watcher([tmp_path], lambda change, path: path.endswith(".py"), on_change)
    watcher.RESTART_PAUSE = 0.05
    watcher.start()
    try:
        wait_until(lambda: watcher.running)
        (tmp_path / "a.py").write_text("A = 1\n")
        wait_until(lambda: watcher.restarts == 1)
        assert watcher.describe()["last_error"] == "SystemExit: a callback that fails once"
        wait_until(lambda: watcher.running)
        (tmp_path / "b.py").write_text("B = 1\n")
        wait_until(lambda: any(p and str(tmp_path / "b.py") in p for p in seen))
    finally:
        watcher.stop()


def test_a_project_root_leaves_out_hidden_directories_virtualenvs_and_node_modules(tmp_path: Path) -> None:
    covers = SourceFilter([tmp_path], []).covers
    assert covers(str(tmp_path / "mysite" / "settings.py"))
    assert covers(str(tmp_path / "polls" / "views.py"))
    assert covers(str(tmp_path / "manage.py"))
    assert not covers(str(tmp_path / ".venv" / "lib" / "python3.11" / "site-packages" / "x.py"))
    assert not covers(str(tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "django" / "urls.py"))
    assert not covers(str(tmp_path / ".git" / "hooks" / "x.py"))
    assert not covers(str(tmp_path / ".cache" / "x.py"))
    assert not covers(str(tmp_path / "frontend" / "node_modules" / "x.py"))


def _switches(thread_id: int | None) -> int:
    """How many times the kernel has put this thread to sleep and woken it so far."""
    with open(f"/proc/self/task/{thread_id}/status") as status:
        return sum(int(line.split()[1]) for line in status if "ctxt_switches" in line)


@pytest.mark.skipif(not inotify_available(), reason="inotify is Linux's; elsewhere watchfiles watches")
def test_an_idle_watcher_sleeps_until_an_event_or_stop_wakes_it(tmp_path: Path) -> None:
    seen: list[set[str] | None] = []
    watcher = Watcher([tmp_path], lambda change, path: path.endswith(".py"), seen.append)
    watcher.start()
    try:
        wait_until(lambda: watcher.running)
        assert watcher.backend == "inotify"
        thread = watcher._thread.native_id
        before = _switches(thread)
        time.sleep(1)  # idle: watchfiles' loop would wake 200 times meanwhile (every 5 ms step)
        assert _switches(thread) - before <= 1
        (tmp_path / "a.py").write_text("A = 1\n")
        wait_until(lambda: {str(tmp_path / "a.py")} in seen)
    finally:
        watcher.stop()
    assert not watcher._thread.is_alive()


@pytest.mark.skipif(not inotify_available(), reason="inotify is Linux's; elsewhere watchfiles watches")
def test_directories_made_after_the_start_are_watched_and_their_files_reported(tmp_path: Path) -> None:
    seen: list[set[str] | None] = []
    watcher = Watcher(
        [tmp_path],
        lambda change, path: path.endswith(".py"),
        seen.append,
        skip_directory=SourceFilter([tmp_path], []).skips_directory,
    )
    watcher.start()
    try:
        wait_until(lambda: watcher.running)
        # A package moved in whole, with a module already in it (its creation made no event).
        staged = tmp_path.parent / f"{tmp_path.name}-staged"
        (staged / "sub").mkdir(parents=True)
        (staged / "sub" / "views.py").write_text("A = 1\n")
        staged.rename(tmp_path / "package")
        wait_until(lambda: any(paths and str(tmp_path / "package" / "sub" / "views.py") in paths for paths in seen))
        (tmp_path / "package" / "sub" / "views.py").write_text("A = 2\n")  # and watched from then on
        wait_until(
            lambda: sum(1 for paths in seen if paths and str(tmp_path / "package" / "sub" / "views.py") in paths) == 2
        )
        # Hidden directories and caches are left out.
        (tmp_path / ".git").mkdir()
        (tmp_path / "__pycache__").mkdir()
        (tmp_path / ".git" / "x.py").write_text("")
        (tmp_path / "__pycache__" / "y.py").write_text("")
        (tmp_path / "z.py").write_text("")
        wait_until(lambda: any(paths and str(tmp_path / "z.py") in paths for paths in seen))
        reported = set().union(*(paths for paths in seen if paths))
        assert str(tmp_path / ".git" / "x.py") not in reported
        assert str(tmp_path / "__pycache__" / "y.py") not in reported
    finally:
        watcher.stop()

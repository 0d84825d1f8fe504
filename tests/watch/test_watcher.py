"""The watcher thread: it restarts after a failure, sleeps while idle, and follows new directories."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import pytest
from harness import wait_until

from reload_middleware._watch import SourceFilter, Watcher
from reload_middleware._watch.inotify import Inotify
from reload_middleware._watch.inotify import available as inotify_available
from reload_middleware._watch.watcher import polling_forced


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


@pytest.mark.skipif(not inotify_available(), reason="inotify is Linux's")
def test_a_file_half_saved_is_unsettled_until_its_save_completes(tmp_path: Path) -> None:
    module = tmp_path / "leaf.py"
    module.write_text("VALUE = 1\n")
    with Inotify([str(tmp_path)], lambda path: False) as notify:
        with module.open("w") as file:
            file.flush()  # truncated, not written yet
            notify.read()
            assert notify.unsettled == {str(module)}
            file.write("VALUE = 2\n")
        notify.read()
        assert notify.unsettled == set()  # written and closed
        module.rename(tmp_path / "leaf.py~")  # vim moves the old file aside first
        notify.read()
        assert str(module) in notify.unsettled
        module.write_text("VALUE = 3\n")
        notify.read()
        assert str(module) not in notify.unsettled


def test_a_burst_of_saves_within_the_reload_delay_is_reported_once(tmp_path: Path) -> None:
    seen: list[set[str] | None] = []
    watcher = Watcher([tmp_path], lambda change, path: path.endswith(".py"), seen.append, quiet_s=1.0)
    watcher.start()
    try:
        wait_until(lambda: watcher.running)
        seen.clear()  # the sweep at start
        names = [f"m{index}.py" for index in range(4)]
        for name in names:  # a formatter rewriting four files, one every 50 ms
            (tmp_path / name).write_text("A = 1\n")
            time.sleep(0.05)
        wait_until(lambda: seen)
        time.sleep(1.2)  # past another quiet time: nothing more comes
        assert seen == [{str(tmp_path / name) for name in names}]
    finally:
        watcher.stop()


def test_where_watchfiles_would_poll_the_watcher_polls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHFILES_FORCE_POLLING", "1")  # as on a Docker Desktop or WSL bind mount
    seen: list[set[str] | None] = []
    watcher = Watcher([tmp_path], lambda change, path: path.endswith(".py"), seen.append)
    assert watcher.backend == "polling"
    watcher.start()
    try:
        wait_until(lambda: watcher.running)
        (tmp_path / "a.py").write_text("A = 1\n")
        wait_until(lambda: any(paths and str(tmp_path / "a.py") in paths for paths in seen))
        assert watcher.describe()["backend"] == "polling"
    finally:
        watcher.stop()


@pytest.mark.parametrize("value", ["false", "Disabled", ""])
def test_polling_is_off_when_its_variable_says_so(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("WATCHFILES_FORCE_POLLING", value)
    monkeypatch.setattr("platform.uname", lambda: platform.uname_result("Linux", "h", "6.1.0-13-amd64", "", "x86_64"))
    assert not polling_forced()


def test_wsl_polls_as_watchfiles_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHFILES_FORCE_POLLING", raising=False)
    release = "5.15.153.1-microsoft-standard-WSL2"
    monkeypatch.setattr("platform.uname", lambda: platform.uname_result("Linux", "h", release, "", "x86_64"))
    assert polling_forced()

"""Which files count: sources under the watched roots, never installed code, hidden directories or virtualenvs."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import watchfiles

from reload_middleware._watch import SourceFilter


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

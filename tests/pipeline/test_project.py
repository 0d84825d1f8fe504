"""The project, in-process: what changed on disk since the serving version was built, and the plan
it asks for; committed changes are known, failed ones stay pending."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from apps import write_app
from harness import AppTree

from reload_middleware._config import Config
from reload_middleware._pipeline import load
from reload_middleware._pipeline.project import Project

APP = {
    "__init__.py": "",
    "leaf.py": "VALUE = 1\n",
    "main.py": "from PKG.leaf import VALUE\n\n\nasync def app(scope, receive, send):\n    pass\n",
    "templates/page.html": "<p>one</p>\n",
}


@pytest.fixture
def project(imported_tree: AppTree) -> Project:
    write_app(imported_tree, APP)
    return load(f"{imported_tree.name}.main:app", Config(watch=False), "a_wrapper_module").project


def test_nothing_changed_plans_nothing(project: Project) -> None:
    assert project.plan(sweep=True) is None


def test_a_save_that_changes_nothing_plans_nothing(project: Project, imported_tree: AppTree) -> None:
    path = imported_tree.path("leaf.py")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 5_000_000_000))
    assert project.plan(sweep=True) is None


def test_an_edit_plans_its_module_and_importers(project: Project, imported_tree: AppTree) -> None:
    imported_tree.write("leaf.py", "VALUE = 2\n")
    plan = project.plan(sweep=True)
    assert plan is not None
    assert plan.changed_modules == {f"{imported_tree.name}.leaf"}
    assert plan.group == {f"{imported_tree.name}.leaf", f"{imported_tree.name}.main"}
    assert list(plan.changes) == [str(Path(imported_tree.path("leaf.py")).resolve())]


def test_a_failed_attempts_changes_are_pending_again(project: Project, imported_tree: AppTree) -> None:
    imported_tree.write("leaf.py", "VALUE = 2\n")
    assert project.plan(sweep=True) is not None
    project.abort()
    again = project.plan(sweep=True)
    assert again is not None
    assert again.changed_modules == {f"{imported_tree.name}.leaf"}


def test_a_template_edit_rebuilds_the_app(project: Project, imported_tree: AppTree) -> None:
    imported_tree.write("templates/page.html", "<p>two</p>\n")
    # What the watcher does with an event for a file no module comes from.
    template = str(imported_tree.path("templates/page.html").resolve())
    project.detector.track_unloaded([template])
    project.detector.notice([template])
    plan = project.plan()
    assert plan is not None
    assert plan.changed_modules == {f"{imported_tree.name}.main"}


def test_a_forced_plan_covers_every_reloadable_module(project: Project, imported_tree: AppTree) -> None:
    plan = project.plan(force=True)
    assert plan is not None
    assert plan.forced
    assert {f"{imported_tree.name}.leaf", f"{imported_tree.name}.main"} <= plan.group

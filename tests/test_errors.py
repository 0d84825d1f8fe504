"""The error report: the user's line when there is one, the whole stack when the fault is ours."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from reload_middleware._errors import BuildError, ImportStringError, failure_files, report_error


def raise_from_here() -> None:
    raise ReferenceError("weakly-referenced object no longer exists")


def test_a_user_error_is_shown_at_the_users_line(tmp_path: Path) -> None:
    user_file = tmp_path / "broken.py"
    user_file.write_text("x = 1\nraise KeyError('missing')\n")
    spec = importlib.util.spec_from_file_location("broken", user_file)
    assert spec
    assert spec.loader
    with pytest.raises(KeyError) as caught:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    try:
        raise BuildError("building failed") from caught.value
    except BuildError as error:
        report = report_error(error, lambda filename: filename == str(user_file))
    assert (report.type, report.file, report.line) == ("KeyError", str(user_file), 2)
    # importlib's frames are left out: the user's are what there is to fix.
    assert str(user_file) in report.traceback
    assert "<frozen importlib" not in report.traceback


def test_an_error_with_no_frame_outside_the_machinery_keeps_its_whole_stack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As if this test file were ours: every frame is then machinery.
    monkeypatch.setattr("reload_middleware._errors.is_machinery", lambda filename: True)
    try:
        raise_from_here()
    except ReferenceError as error:
        report = report_error(error, lambda filename: False)
    assert (report.type, report.file, report.line) == ("ReferenceError", None, None)
    assert "raise_from_here" in report.traceback


def test_a_hand_made_syntax_error_is_reported_with_a_text_file_and_an_int_line_or_none() -> None:
    details: Any = (b"/tmp/x.py", "7", 1, "text")  # what no compiler makes, but a hand may raise
    error = SyntaxError("bad", details)
    report = report_error(error, lambda filename: False)
    assert (report.file, report.line) == ("/tmp/x.py", None)


def test_an_exception_whose_str_raises_is_reported_all_the_same() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    report = report_error(Unprintable(), lambda filename: False)
    assert report.type == "Unprintable"
    assert "cannot be shown" in report.message


def test_the_files_of_a_failure_are_those_its_causes_ran_through_and_the_one_that_did_not_compile(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken_syntax.py"
    broken.write_text("VALUE = (\n")
    try:
        try:
            compile(broken.read_text(), str(broken), "exec")
        except SyntaxError as exc:
            raise ImportStringError("Importing module 'broken_syntax' failed inside the module") from exc
    except ImportStringError as wrapped:
        files = failure_files(wrapped)
    assert str(broken) in files
    assert __file__ in files  # where it was raised
    assert not any(name.startswith("<") for name in files)

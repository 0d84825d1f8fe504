"""Transparency, measured on Starlette's own test suite: with every ``TestClient`` app wrapped in
an enabled middleware (nothing ever edited), exactly the tests that pass on the bare apps pass, on
asyncio and on trio (the suite runs each test on both)."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

SUITE = Path(sys.prefix) / "starlette-suite"  # laid out by `make conformance`
HERE = Path(__file__).resolve().parent


def outcomes(tmp_path: Path, name: str, *plugins: str) -> dict[str, str]:
    """Each test of the suite with its outcome: passed, failed, error or skipped."""
    report = tmp_path / f"{name}.xml"
    arguments = ["-p", "no:cacheprovider", "-q", f"--junitxml={report}", "--timeout=60"]
    for plugin in plugins:
        arguments += ["-p", plugin]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RELOAD_MIDDLEWARE")}
    environment["PYTHONPATH"] = str(HERE)
    environment["WRAPPED_COUNT_FILE"] = str(tmp_path / f"{name}.wrapped")
    finished = subprocess.run(
        [sys.executable, "-m", "pytest", *arguments, "tests"],
        cwd=SUITE,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert report.exists(), finished.stdout[-3000:] + finished.stderr[-3000:]
    result: dict[str, str] = {}
    for case in ElementTree.parse(report).iter("testcase"):
        kinds = {child.tag for child in case} & {"failure", "error", "skipped"}
        result[f"{case.get('classname')}::{case.get('name')}"] = next(iter(kinds), "passed")
    return result


@pytest.mark.timeout(900)
def test_starlettes_suite_passes_the_same_tests_with_every_app_wrapped(tmp_path: Path) -> None:
    assert (SUITE / "tests").is_dir(), "run `make conformance` first (make test does)"
    bare = outcomes(tmp_path, "bare")
    wrapped = outcomes(tmp_path, "wrapped", "conformance.wrap_testclient")
    assert len(bare) > 1000
    assert any(name.endswith("[trio]") for name in bare)
    assert int((tmp_path / "wrapped.wrapped").read_text()) > 500  # apps the plugin really wrapped
    assert set(wrapped) == set(bare)
    differences = {name: (bare[name], wrapped[name]) for name in bare if bare[name] != wrapped[name]}
    assert differences == {}

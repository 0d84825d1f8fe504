"""Where a module comes from, whether it was imported or not (an app broken at start was not)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reload_middleware._files import module_location


@pytest.fixture
def on_path(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [name for name in sys.modules if name.startswith("located_")]:
        del sys.modules[name]


def test_an_imported_module_is_where_it_was_loaded_from() -> None:
    import json

    assert module_location("json") == (json.__file__, tuple(json.__path__))


def test_a_module_never_imported_is_found_without_running_it(on_path: Path) -> None:
    (on_path / "located_broken.py").write_text("VALUE = (\n")
    assert module_location("located_broken") == (str(on_path / "located_broken.py"), ())
    assert "located_broken" not in sys.modules


def test_a_module_whose_package_fails_to_import_cannot_be_told(on_path: Path) -> None:
    (on_path / "located_package").mkdir()
    (on_path / "located_package" / "__init__.py").write_text("raise RuntimeError('broken')\n")
    (on_path / "located_package" / "main.py").write_text("")
    assert module_location("located_package.main") == (None, ())
    assert module_location("located_nowhere") == (None, ())

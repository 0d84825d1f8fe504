"""Logging handlers and filters a module adds at import are its own: taken back when it is
replaced, put back when the build that replaced it is discarded."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from reload_middleware._engine.effects import discard_effects, recording_effects, release_effects

CONFIGURES_LOGGING = """
import logging

handler = logging.NullHandler()
logging.getLogger("effects.audit").addHandler(handler)
logging.getLogger("effects.audit").addFilter(lambda record: True)
"""


@pytest.fixture
def audit() -> Iterator[logging.Logger]:
    logger = logging.getLogger("effects.audit")
    yield logger
    logger.handlers.clear()
    logger.filters.clear()


def executed(directory: Path, source: str, *, recorded: bool = True) -> tuple[ModuleType, list[int]]:
    path = directory / "configures.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("configures", path)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    if not recorded:
        spec.loader.exec_module(module)
        return module, []
    with recording_effects() as namespaces:
        spec.loader.exec_module(module)
    return module, namespaces


def test_what_a_module_added_is_taken_back_when_it_is_replaced_and_put_back_on_a_rollback(
    tmp_path: Path, audit: logging.Logger
) -> None:
    module, namespaces = executed(tmp_path, CONFIGURES_LOGGING)
    assert namespaces == [id(vars(module))] * 2
    assert (audit.handlers, len(audit.filters)) == ([module.handler], 1)
    restore = release_effects([module])
    assert (audit.handlers, audit.filters) == ([], [])
    restore()  # the build that replaced it was discarded
    assert (audit.handlers, len(audit.filters)) == ([module.handler], 1)


def test_reimporting_a_module_leaves_one_handler_as_a_fresh_process_has(tmp_path: Path, audit: logging.Logger) -> None:
    module, _ = executed(tmp_path, CONFIGURES_LOGGING)
    for _ in range(3):
        release_effects([module])
        module, _ = executed(tmp_path, CONFIGURES_LOGGING)
    assert (audit.handlers, len(audit.filters)) == ([module.handler], 1)


def test_a_discarded_build_takes_its_handlers_with_it(tmp_path: Path, audit: logging.Logger) -> None:
    _, namespaces = executed(tmp_path, CONFIGURES_LOGGING)
    discard_effects(namespaces)
    assert (audit.handlers, audit.filters) == ([], [])


def test_handlers_added_outside_an_import_are_left_alone(tmp_path: Path, audit: logging.Logger) -> None:
    module, _ = executed(tmp_path, CONFIGURES_LOGGING, recorded=False)
    release_effects([module])
    assert audit.handlers == [module.handler]


def test_a_module_that_disables_existing_loggers_never_disables_ours(tmp_path: Path) -> None:
    # What dictConfig() does to every logger it does not name (a real one would also close the
    # handlers of this test run: tests/e2e/test_old_code.py runs it in a server).
    disables = "import logging\nlogging.getLogger('reload_middleware._pipeline.history').disabled = True\n"
    executed(tmp_path, disables)
    assert not logging.getLogger("reload_middleware._pipeline.history").disabled

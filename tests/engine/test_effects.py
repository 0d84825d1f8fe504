"""What a module does to the process at import (logging handlers and filters, ``sys.path`` entries,
signal handlers) is its own: taken back when it is replaced, put back when the build that replaced
it is discarded."""

from __future__ import annotations

import importlib.util
import logging
import pickle
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from reload_middleware._engine import signals
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


ADDS_TO_PATH = """
import sys

sys.path.insert(0, {entry!r})
"""


@pytest.fixture
def path_entry(tmp_path: Path) -> Iterator[str]:
    entry = str(tmp_path / "plugins")
    yield entry
    while entry in sys.path:
        sys.path.remove(entry)


def test_a_directory_a_module_put_on_sys_path_goes_with_it_and_comes_back_on_a_rollback(
    tmp_path: Path, path_entry: str
) -> None:
    module, _ = executed(tmp_path, ADDS_TO_PATH.format(entry=path_entry))
    assert sys.path[0] == path_entry
    restore = release_effects([module])
    assert path_entry not in sys.path
    restore()
    assert sys.path[0] == path_entry


def test_reimporting_a_module_that_extends_sys_path_leaves_one_entry(tmp_path: Path, path_entry: str) -> None:
    module, _ = executed(tmp_path, ADDS_TO_PATH.format(entry=path_entry))
    for _ in range(3):
        release_effects([module])
        module, _ = executed(tmp_path, ADDS_TO_PATH.format(entry=path_entry))
    assert sys.path.count(path_entry) == 1


def test_sys_path_changes_outside_an_import_and_copies_of_it_are_left_alone(tmp_path: Path, path_entry: str) -> None:
    module, _ = executed(tmp_path, "import sys\ncopy = sys.path.copy()\ncopy.append('elsewhere')\n")
    sys.path.append(path_entry)
    release_effects([module])
    assert path_entry in sys.path
    assert type(pickle.loads(pickle.dumps(sys.path))) is list


SETS_A_HANDLER = """
import signal

received = []
handler = lambda signum, frame: received.append(signum)
signal.signal(signal.SIGUSR1, handler)
"""


@pytest.fixture
def sigusr1() -> Iterator[None]:
    before = signal.getsignal(signal.SIGUSR1)
    yield
    signals._kept.pop(signal.SIGUSR1, None)  # the trampoline's state is the process's, as the handler is
    signal.signal(signal.SIGUSR1, before)


def executed_in_a_worker_thread(directory: Path, source: str) -> tuple[ModuleType, list[int]]:
    """``executed()`` as a reload runs it: in a thread that is not the main thread."""
    outcome: list[tuple[ModuleType, list[int]] | BaseException] = []

    def execute() -> None:
        try:
            outcome.append(executed(directory, source))
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=execute)
    worker.start()
    worker.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def test_a_reload_in_a_worker_thread_replaces_the_signal_handler_of_the_replaced_version(
    tmp_path: Path, sigusr1: None
) -> None:
    first, _ = executed(tmp_path, SETS_A_HANDLER)  # the server's first import: the main thread
    restore = release_effects([first])
    second, namespaces = executed_in_a_worker_thread(tmp_path, SETS_A_HANDLER)
    signal.raise_signal(signal.SIGUSR1)
    assert (first.received, second.received) == ([], [signal.SIGUSR1])
    discard_effects(namespaces)  # that build rolled back: the first version's handler serves again
    restore()
    signal.raise_signal(signal.SIGUSR1)
    assert (first.received, second.received) == ([signal.SIGUSR1], [signal.SIGUSR1])
    assert signal.getsignal(signal.SIGUSR1) is first.handler


def test_getsignal_answers_the_apps_handler_so_that_chaining_handlers_does_not_loop(
    tmp_path: Path, sigusr1: None
) -> None:
    first, _ = executed(tmp_path, SETS_A_HANDLER)
    chains = """
import signal

previous = signal.getsignal(signal.SIGUSR1)
signal.signal(signal.SIGUSR1, lambda signum, frame: previous(signum, frame))
"""
    executed_in_a_worker_thread(tmp_path, chains)
    signal.raise_signal(signal.SIGUSR1)
    assert first.received == [signal.SIGUSR1]


def test_a_version_that_ignores_the_signal_hands_it_back_to_the_system(tmp_path: Path, sigusr1: None) -> None:
    first, _ = executed(tmp_path, SETS_A_HANDLER)
    release_effects([first])
    executed_in_a_worker_thread(tmp_path, "import signal\nsignal.signal(signal.SIGUSR1, signal.SIG_IGN)\n")
    signal.raise_signal(signal.SIGUSR1)
    assert first.received == []
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_IGN


def test_a_signal_the_first_import_did_not_handle_still_needs_the_main_thread(tmp_path: Path, sigusr1: None) -> None:
    with pytest.raises(ValueError, match="main thread"):
        executed_in_a_worker_thread(tmp_path, SETS_A_HANDLER)

"""No old code runs behind an "ok" (guarantee 7 at run time): code of a replaced version that runs
on (a thread started at import) makes the reload stale, with where it runs; the advice it gives
(stop it in ``on_retire``) ends it, and the server then runs what a fresh process runs."""

from __future__ import annotations

import signal
import sys
import time

import pytest
from apps import write_semantic_app
from harness import AppTree, ServerFactory, fresh_report, wait_until

# A module that starts a thread at import, as a metrics pusher or a cache warmer does.
TICKER = """
import threading

from reload_middleware import on_retire

VERSION = {version!r}
stop = threading.Event()


def loop():
    while not stop.wait(0.01):
        pass


thread = threading.Thread(target=loop, name="ticker " + VERSION, daemon=True)
thread.start()
{undo}
"""
UNDO = "on_retire(lambda: (stop.set(), thread.join(5)))"  # the README's pattern
REPORT = """
import threading

import PKG.ticker


def report():
    return sorted(thread.name for thread in threading.enumerate() if thread.name.startswith("ticker"))
"""


def ticker(version: str, *, undo: bool) -> str:
    return TICKER.format(version=version, undo=UNDO if undo else "")


def test_a_thread_of_the_replaced_version_that_runs_on_makes_the_reload_stale(
    tree: AppTree, serve: ServerFactory
) -> None:
    write_semantic_app(tree, {"ticker.py": ticker("1", undo=False), "report.py": REPORT})
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    assert server.client.get("/").json() == ["ticker 1"]
    tree.write("ticker.py", ticker("2", undo=False))
    answer = server.client.post("/__reload")
    assert (answer.status_code, answer.json()["ok"], answer.json()["version"]) == (500, False, 2)
    error = answer.json()["error"]
    assert error["type"] == "StaleCode"
    assert f"{tree.name}.ticker.loop of version 1" in error["message"]
    assert "thread 'ticker 1'" in error["message"]
    assert "on_retire" in error["message"]  # and what to do about it
    assert error["file"] == str(tree.path("ticker.py"))
    status = server.status()
    assert [(ran["version"], ran["thread"]) for ran in status["old_code"]] == [(1, "ticker 1")]
    assert (status["reloads"], status["failures"]) == (1, 1)  # one stale reload, counted once
    assert "but it is stale" in server.log()
    # A fresh process runs one ticker; this one runs both, and says so at every reload.
    assert fresh_report(tree.root, tree.name) == ["ticker 2"]
    assert server.client.get("/").json() == ["ticker 1", "ticker 2"]
    tree.write("ticker.py", ticker("3", undo=False))
    assert server.client.post("/__reload").json()["ok"] is False


def test_a_thread_stopped_by_on_retire_leaves_what_a_fresh_process_runs(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(tree, {"ticker.py": ticker("1", undo=True), "report.py": REPORT})
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    for version in ("2", "3", "4"):
        tree.write("ticker.py", ticker(version, undo=True))
        answer = server.client.post("/__reload").json()
        assert answer["ok"] is True, answer["error"]
        assert fresh_report(tree.root, tree.name) == [f"ticker {version}"]
        wait_until(lambda: server.client.get("/").json() == [f"ticker {version}"])  # noqa: B023 (waited for here)
    status = server.status()
    assert (status["failures"], status["old_code"]) == (0, [])


# Logging set up at import, the three usual ways; `/` says how many handlers each logger has.
LOGGING = """
import logging
import logging.config

logging.basicConfig(level=logging.INFO)
logging.getLogger("PKG.audit").addHandler(logging.StreamHandler())
logging.config.dictConfig({{"version": 1, "loggers": {{"PKG.dict": {{"handlers": ["plain"]}}}},
                            "handlers": {{"plain": {{"class": "logging.StreamHandler"}}}}}})
EDITION = {edition}
"""
LOGGING_REPORT = """
import logging

import PKG.logging_setup


def report():
    names = ["", "PKG.audit", "PKG.dict"]
    return {name or "root": len(logging.getLogger(name).handlers) for name in names}
"""


def test_handlers_added_at_import_are_those_of_a_fresh_process_and_our_lines_still_log(
    tree: AppTree, serve: ServerFactory
) -> None:
    write_semantic_app(tree, {"logging_setup.py": LOGGING.format(edition=1), "report.py": LOGGING_REPORT})
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    for edition in (2, 3, 4):
        tree.write("logging_setup.py", LOGGING.format(edition=edition))
        answer = server.client.post("/__reload").json()
        assert answer["ok"] is True, answer["error"]
    expected = fresh_report(tree.root, tree.name)
    assert expected == {"root": 1, f"{tree.name}.audit": 1, f"{tree.name}.dict": 1}
    assert server.client.get("/").json() == expected
    # dictConfig() disabled every logger it does not name; ours logged every reload all the same.
    assert server.log().count("now serving version") == 3


# A callback held by the interpreter itself (codecs' search functions): nothing walks there.
CODEC = """
import codecs

EDITION = {edition}


def search(name):
    return None


codecs.register(search)
"""
CODEC_REPORT = """
import codecs

import PKG.codec


def report():
    try:
        codecs.lookup("reload-middleware-no-such-codec")  # asks every search function
    except LookupError:
        pass
    return PKG.codec.EDITION
"""


@pytest.mark.skipif(
    sys.version_info < (3, 12), reason="run-time detection of held callbacks is sys.monitoring's, 3.12+"
)
def test_a_replaced_callback_a_library_still_calls_is_reported_when_it_runs(
    tree: AppTree, serve: ServerFactory
) -> None:
    write_semantic_app(tree, {"codec.py": CODEC.format(edition=1), "report.py": CODEC_REPORT})
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    tree.write("codec.py", CODEC.format(edition=2))
    assert server.client.post("/__reload").json()["ok"] is True  # nothing reaches it from the app
    assert server.status()["old_code"] == []
    assert server.client.get("/").json() == 2  # ... but version 1's search function just ran
    status = wait_until(lambda: (status := server.status())["old_code"] and status)
    assert [(ran["version"], ran["function"]) for ran in status["old_code"]] == [(1, f"{tree.name}.codec.search")]
    assert status["last_error"]["type"] == "StaleCode"
    assert "Old code ran after its version was replaced" in server.log()


# A handler for SIGUSR1 set at import (a log reopener, a debug dump); `/` says which version's
# handler the app sees, and the handler writes its version where the test reads it.
SIGNALS = """
import os
import signal

EDITION = {edition}


def dump(number, frame, edition=EDITION):
    with open(os.environ["SIGNAL_RECEIVED"], "a") as received:
        received.write(f"{{edition}}\\n")


signal.signal(signal.SIGUSR1, dump)
{also}
"""
SIGNAL_REPORT = """
import signal

import PKG.signals


def report():
    return signal.getsignal(signal.SIGUSR1).__defaults__[0]
"""


def signals(edition: int, also: str = "") -> str:
    return SIGNALS.format(edition=edition, also=also)


def test_a_signal_handler_set_at_import_is_the_new_versions_after_a_reload(tree: AppTree, serve: ServerFactory) -> None:
    received = tree.root / "received"
    write_semantic_app(tree, {"signals.py": signals(1), "report.py": SIGNAL_REPORT})
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0", "SIGNAL_RECEIVED": str(received)})
    for edition in (2, 3):
        tree.write("signals.py", signals(edition))
        answer = server.client.post("/__reload").json()
        assert answer["ok"] is True, answer["error"]
    assert server.client.get("/").json() == fresh_report(tree.root, tree.name) == 3
    server.process.send_signal(signal.SIGUSR1)
    wait_until(lambda: received.exists() and received.read_text().endswith("\n"))
    assert received.read_text() == "3\n"  # one handler ran, the serving version's


def test_a_handler_for_a_signal_the_first_import_did_not_handle_fails_the_reload_with_what_to_do(
    tree: AppTree, serve: ServerFactory
) -> None:
    write_semantic_app(tree, {"signals.py": signals(1), "report.py": SIGNAL_REPORT})
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0", "SIGNAL_RECEIVED": str(tree.root / "received")})
    tree.write("signals.py", signals(2, also="signal.signal(signal.SIGUSR2, dump)"))
    error = server.client.post("/__reload").json()["error"]
    assert error["type"] == "ValueError"
    assert "install it in the app's lifespan startup" in error["message"]
    assert server.client.get("/").json() == 1  # the old version serves on


# A module that puts a folder on sys.path at import, as a Django settings module does for its apps.
EXTENDS_PATH = """
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "vendor_{edition}"))
"""
PATH_REPORT = """
import sys

import PKG.paths


def report():
    return [entry.rpartition("/")[2] for entry in sys.path if entry.rpartition("/")[2].startswith("vendor_")]
"""


def test_a_folder_a_replaced_version_put_on_sys_path_is_gone_as_in_a_fresh_process(
    tree: AppTree, serve: ServerFactory
) -> None:
    write_semantic_app(tree, {"paths.py": EXTENDS_PATH.format(edition=1), "report.py": PATH_REPORT})
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    for edition in (2, 3):
        tree.write("paths.py", EXTENDS_PATH.format(edition=edition))
        answer = server.client.post("/__reload").json()
        assert answer["ok"] is True, answer["error"]
    assert server.client.get("/").json() == fresh_report(tree.root, tree.name) == ["vendor_3"]


# A library's "first registration wins" global (here the interpreter's own, sys.excepthook): the
# second version does not register, and the first version's hook is the one a crash would call.
FIRST_WINS = """
import sys

from reload_middleware import on_retire

EDITION = {edition}


def report_crash(kind, value, traceback, edition=EDITION):
    sys.__excepthook__(kind, value, traceback)


{register}
"""
FIRST_WINS_REGISTER = """
if sys.excepthook is sys.__excepthook__:
    sys.excepthook = report_crash
"""
# The README's advice: register, and undo on retirement only what is still yours.
REGISTER_AND_UNDO = """
sys.excepthook = report_crash
on_retire(lambda: sys.excepthook is report_crash and setattr(sys, "excepthook", sys.__excepthook__))
"""
HOOK_REPORT = """
import sys

import PKG.hooks


def report():
    return sys.excepthook.__defaults__[0]
"""


def first_wins(edition: int, *, undo: bool) -> str:
    return FIRST_WINS.format(edition=edition, register=REGISTER_AND_UNDO if undo else FIRST_WINS_REGISTER)


def test_old_code_a_library_global_holds_is_reported_with_the_chain_that_holds_it(
    tree: AppTree, serve: ServerFactory
) -> None:
    write_semantic_app(tree, {"hooks.py": first_wins(1, undo=False), "report.py": HOOK_REPORT})
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    tree.write("hooks.py", first_wins(2, undo=False))
    assert server.client.post("/__reload").json()["ok"] is True  # nothing in the app reaches it
    assert fresh_report(tree.root, tree.name) == 2
    assert server.client.get("/").json() == 1  # ... but the interpreter holds version 1's hook
    # Found by the leak check, after the retirement: on every Python, whether it runs or not.
    status = wait_until(lambda: (status := server.status())["old_code"] and status, timeout=15)
    [held] = status["old_code"]
    assert (held["version"], held["function"]) == (1, f"{tree.name}.hooks.report_crash")
    assert (
        held["held_by"]
        == f"sys.excepthook -> function {tree.name}.hooks.report_crash -> namespace of retired {tree.name}.hooks"
    )
    assert (status["last_error"]["type"], status["last_error"]["file"]) == ("StaleCode", str(tree.path("hooks.py")))
    assert "Old code is held where it can run" in server.log()


def test_a_hook_registered_by_each_version_and_undone_if_still_its_own_leaves_what_a_fresh_process_has(
    tree: AppTree, serve: ServerFactory
) -> None:
    write_semantic_app(tree, {"hooks.py": first_wins(1, undo=True), "report.py": HOOK_REPORT})
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    for edition in (2, 3):
        tree.write("hooks.py", first_wins(edition, undo=True))
        assert server.client.post("/__reload").json()["ok"] is True
    assert server.client.get("/").json() == fresh_report(tree.root, tree.name) == 3
    time.sleep(2.5)  # the leak check runs 2 s after the last retirement
    status = server.status()
    # (A thread made while version 1's hook was set keeps a copy of it, as any thread does, and
    # may keep version 1 listed in `leaked_versions` for as long as it lives: a leak, not old code.)
    assert (status["old_code"], status["failures"]) == ([], 0)

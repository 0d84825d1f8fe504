"""A pytest plugin for running another project's test suite with every ``TestClient`` app wrapped
in an enabled ``ReloadMiddleware`` (``pytest -p conformance.wrap_testclient``).

The apps of a test suite are built inside test functions, not in importable modules; each one is
put in a small package of its own (``wrapped_N/__init__.py``, its ``app`` set after import), so
that the middleware has an import string and a watched directory, as with a real app.
"""

from __future__ import annotations

import gc
import importlib
import itertools
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette import testclient

from reload_middleware import ReloadMiddleware

_ROOT = Path(tempfile.mkdtemp(prefix="reload-middleware-wrapped-"))
_numbers = itertools.count()
_original_init = testclient.TestClient.__init__
sys.path.insert(0, str(_ROOT))


def _wrap(app: Any) -> ReloadMiddleware:
    name = f"wrapped_{next(_numbers)}"
    package = _ROOT / name
    package.mkdir()
    (package / "__init__.py").write_text("app = None  # set right after import\n")
    vars(importlib.import_module(name))["app"] = app
    # The version header is the one difference the contract allows: off, to compare the rest.
    return ReloadMiddleware(f"{name}:app", enabled=True, watch_dirs=[package], version_header=None, environ={})


def _wrapped_init(self: testclient.TestClient, app: Any, *args: Any, **kwargs: Any) -> None:
    _original_init(self, _wrap(app), *args, **kwargs)


testclient.TestClient.__init__ = _wrapped_init  # type: ignore[method-assign]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Say how many apps were wrapped (``WRAPPED_COUNT_FILE``): a run that wrapped none proves nothing."""
    target = os.environ.get("WRAPPED_COUNT_FILE")
    if target:
        Path(target).write_text(str(next(_numbers)))


@pytest.fixture(autouse=True)
def _collect_middlewares() -> Iterator[None]:
    yield
    # A dropped middleware stops its watcher and worker once collected; the apps of a test suite
    # live in reference cycles, so collect now and then, before threads and watches pile up.
    if threading.active_count() > _THREADS_BEFORE_COLLECTING:
        gc.collect()


_THREADS_BEFORE_COLLECTING = 60

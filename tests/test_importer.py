from __future__ import annotations

import pytest
from harness import AppTree

from reload_middleware import ImportStringError, ReloadMiddleware
from reload_middleware._importer import import_string_for, load_app

APP = "async def app(scope, receive, send):\n    pass\n"


@pytest.mark.parametrize("import_string", ["", "module", ":app", "module:", "bad-name:app", "a..b:app"])
def test_malformed_import_string(import_string: str) -> None:
    with pytest.raises(ImportStringError, match="must be in format"):
        load_app(import_string, factory=False)


def test_missing_module_says_so(imported_tree: AppTree) -> None:
    with pytest.raises(ImportStringError, match=rf"Could not import module '{imported_tree.name}.nope'"):
        load_app(f"{imported_tree.name}.nope:app", factory=False)


def test_missing_attribute_says_so(imported_tree: AppTree) -> None:
    imported_tree.write("__init__.py", "")
    imported_tree.write("main.py", APP)
    with pytest.raises(ImportStringError, match=r"has no attribute 'application'"):
        load_app(f"{imported_tree.name}.main:application", factory=False)


def test_error_inside_the_module_is_not_reported_as_missing(imported_tree: AppTree) -> None:
    imported_tree.write("__init__.py", "")
    imported_tree.write("main.py", "import not_a_real_dependency_xyz\n" + APP)
    with pytest.raises(ImportStringError, match="failed inside the module: ModuleNotFoundError") as info:
        load_app(f"{imported_tree.name}.main:app", factory=False)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_exception_raised_by_the_module_is_chained(imported_tree: AppTree) -> None:
    imported_tree.write("__init__.py", "")
    imported_tree.write("main.py", "raise RuntimeError('boom')\n")
    with pytest.raises(ImportStringError, match="RuntimeError: boom") as info:
        load_app(f"{imported_tree.name}.main:app", factory=False)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_factory_is_called_and_its_errors_reported(imported_tree: AppTree) -> None:
    imported_tree.write("__init__.py", "")
    imported_tree.write("main.py", APP + "def create():\n    return app\ndef broken():\n    raise ValueError('no')\n")
    module = f"{imported_tree.name}.main"
    assert load_app(f"{module}:create", factory=True) is load_app(f"{module}:app", factory=False)
    with pytest.raises(ImportStringError, match=r"App factory .* raised ValueError: no"):
        load_app(f"{module}:broken", factory=True)


def test_not_an_app(imported_tree: AppTree) -> None:
    imported_tree.write("__init__.py", "")
    imported_tree.write("main.py", "app = 42\n")
    with pytest.raises(ImportStringError, match="is int, not an ASGI or WSGI app"):
        load_app(f"{imported_tree.name}.main:app", factory=False)


def test_app_object_is_traced_to_its_module(imported_tree: AppTree) -> None:
    imported_tree.write("__init__.py", "")
    imported_tree.write("main.py", APP)
    app = load_app(f"{imported_tree.name}.main:app", factory=False)
    assert import_string_for(app, wrapper_module=__name__) == f"{imported_tree.name}.main:app"


def test_app_object_nobody_holds_asks_for_an_import_string() -> None:
    async def orphan(scope: object, receive: object, send: object) -> None:
        pass

    with pytest.raises(ImportStringError, match="Pass an import string"):
        ReloadMiddleware(orphan, enabled=True, environ={})


def test_app_defined_in_the_wrapper_module_is_refused(imported_tree: AppTree) -> None:
    imported_tree.write("__init__.py", "")
    imported_tree.write(
        "selfwrap.py",
        "from reload_middleware import ReloadMiddleware\n"
        + APP
        + "wrapped = ReloadMiddleware('PKG.selfwrap:app', enabled=True)\n",
    )
    with pytest.raises(ImportStringError, match="defined in the module that wraps it") as info:
        load_app(f"{imported_tree.name}.selfwrap:wrapped", factory=False)
    assert info.value.__cause__ is not None

"""Turn ``"module:attribute"`` into an app, with errors that say which part is wrong."""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
from types import ModuleType
from typing import Any

from ._errors import ImportStringError

logger = logging.getLogger(__name__)
_OWN_PACKAGE = __name__.split(".")[0]
_DETECTED_FACTORIES: set[str] = set()


def split_import_string(import_str: str) -> tuple[str, str]:
    module_name, _, attribute = import_str.partition(":")
    if not module_name or not attribute or any(not part.isidentifier() for part in module_name.split(".")):
        raise ImportStringError(f'Import string "{import_str}" must be in format "<module>:<attribute>", like uvicorn')
    return module_name, attribute


def import_module(module_name: str) -> ModuleType:
    """Import ``module_name``; a missing module and an error inside it raise different messages."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ImportStringError(f"Could not import module {module_name!r}: no module named {exc.name!r}") from None
        raise ImportStringError(
            f"Importing module {module_name!r} failed inside the module: {type(exc).__name__}: {exc}"
        ) from exc
    except Exception as exc:
        raise ImportStringError(
            f"Importing module {module_name!r} failed inside the module: {type(exc).__name__}: {exc}"
        ) from exc


def load_app(import_str: str, *, factory: bool) -> Any:
    """Import the app named by ``import_str``, calling it first when it is a factory."""
    module_name, attribute = split_import_string(import_str)
    module = import_module(module_name)
    instance: Any = module
    for part in attribute.split("."):
        try:
            instance = getattr(instance, part)
        except AttributeError:
            raise ImportStringError(f"Module {module_name!r} has no attribute {attribute!r}") from None
    if not factory and _looks_like_factory(instance):
        if import_str not in _DETECTED_FACTORIES:  # said once, not at every reload
            _DETECTED_FACTORIES.add(import_str)
            logger.warning(
                "%s is a function that takes no arguments: an app factory, called to make the app. "
                "Say so with --factory (factory=True).",
                import_str,
            )
        factory = True
    if factory:
        if not callable(instance):
            raise ImportStringError(f"{import_str!r} is not callable, so it cannot be an app factory")
        try:
            instance = instance()
        except Exception as exc:
            raise ImportStringError(f"App factory {import_str!r} raised {type(exc).__name__}: {exc}") from exc
    if not callable(instance):
        raise ImportStringError(f"{import_str!r} is {type(instance).__name__}, not an ASGI or WSGI app")
    return instance


def _looks_like_factory(value: Any) -> bool:
    """A plain function every argument of which is optional: no app is called that way (uvicorn
    detects factories the same way, by what the call would need)."""
    if not inspect.isfunction(value) or inspect.iscoroutinefunction(value):
        return False
    try:
        parameters = inspect.signature(value).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters)


def caller_module() -> str:
    """The name of the first module on the call stack outside this package: the wrapper module."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name != _OWN_PACKAGE and not name.startswith(_OWN_PACKAGE + "."):
            return str(name)
        frame = frame.f_back  # type: ignore[assignment]
    return "__main__"


def import_string_for(app: object, wrapper_module: str) -> str:
    """Find ``"module:attribute"`` for an app object, so that it can be imported anew on reload."""
    found: list[str] = []
    for name, module in list(sys.modules.items()):
        if name == wrapper_module or getattr(module, "__file__", None) is None:
            continue
        for attribute, value in list(vars(module).items()):
            if value is app:
                found.append(f"{name}:{attribute}")
    defining = getattr(app, "__module__", None)
    preferred = [item for item in found if item.partition(":")[0] == defining]
    if len(found) == 1 or len(preferred) == 1:
        return (preferred or found)[0]
    wrapper = sys.modules.get(wrapper_module)
    if not found and wrapper is not None and any(value is app for value in list(vars(wrapper).values())):
        raise ImportStringError(
            f"The app is defined in {wrapper_module}, the module that wraps it, which is never reloaded: "
            'move the app to a module of its own and wrap that, e.g. reloadable("mypackage.main:app").'
        )
    where = f"it is bound in {', '.join(sorted(found))}" if found else "no imported module holds it"
    # The usual way to get there: app.add_middleware(ReloadMiddleware), which hands over an inner
    # layer of the app, built at its first request. Reloading wraps the whole app from outside.
    hint = (
        ""
        if found
        else " (app.add_middleware(ReloadMiddleware) cannot work: the middleware wraps the whole app, from a "
        "module of its own)"
    )
    raise ImportStringError(
        f"Cannot tell which module defines the app object ({where}){hint}. "
        'Pass an import string instead, e.g. ReloadMiddleware("mypackage.main:app").'
    )

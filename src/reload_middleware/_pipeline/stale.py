"""Never stale-but-ok: after a swap, does the serving app, or a project module that was not
reloaded, still reach code of the modules the reload replaced?

A registry in an unchanged module (a dict of handlers filled by a decorator, a plugin list) keeps
the old functions next to the new ones, and the old ones answer. The search walks forward from the
new app and from every unchanged project module, and stops at the first function, class or module
of the replaced version; the path it took is the chain to show.

The walk is kept to what project code can hold: it does not enter other modules, installed
libraries' classes and functions' globals (only their closures and defaults, where a decorator
keeps what it wraps), or this package's objects (they hold the draining version on purpose). It
visits at most ``budget`` objects.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from types import BuiltinFunctionType, CodeType, FrameType, FunctionType, MethodType, ModuleType
from typing import Any
from weakref import ReferenceType

_OWN_PACKAGE = __name__.split(".")[0]
_ATOMS = frozenset(
    {str, bytes, int, float, complex, bool, type(None), CodeType, BuiltinFunctionType, ReferenceType, FrameType}
)
BUDGET = 200_000
# The walk runs while the new version serves, and holds the interpreter lock: it lets go of it at
# least this often, so that a request that arrives meanwhile waits for it about this long, not up
# to the interpreter's 5 ms switch interval at every step of its way through the server.
_YIELD_EVERY_S = 0.001
_YIELD_CHECK = 64  # objects between two looks at the clock
_YIELD_SLEEP_S = 0.0001


def find_stale(
    app: object,
    unchanged: Mapping[str, ModuleType],
    replaced: Mapping[str, ModuleType],
    is_project: Callable[[str], bool],
    is_retired: Callable[[CodeType], bool] = lambda code: False,
    budget: int = BUDGET,
) -> str | None:
    """The chain from the new app or an unchanged module to code of ``replaced``, or of a version
    retired before (``is_retired`` tells its functions' code), or ``None``."""
    # The modules first: an app that lives in one of them is named by where it lives.
    roots: list[tuple[object, str]] = [(vars(module), name) for name, module in unchanged.items()]
    where = (
        f"{name}.{key}"
        for name, module in unchanged.items()
        for key, value in list(vars(module).items())
        if value is app
    )
    roots.append((app, next(where, "the app")))
    return _Search(replaced, is_project, is_retired).run(roots, budget)


_NO_KEY = object()  # how a child that is not a dict entry was reached
_ATTRIBUTES = object()  # an instance's ``__dict__``: its entries read as attributes


class _Search:
    """Only ``type()`` and the C-level accessors of real functions, classes and containers are
    used: ``isinstance`` and ``getattr`` read ``__class__`` and attributes that an object may
    compute (Flask's ``request`` proxy raises outside a request)."""

    def __init__(
        self,
        replaced: Mapping[str, ModuleType],
        is_project: Callable[[str], bool],
        is_retired: Callable[[CodeType], bool],
    ) -> None:
        self._is_project = is_project
        self._is_retired = is_retired
        self._old_namespaces = {id(vars(module)) for module in replaced.values()}
        self._old = {id(module) for module in replaced.values()}
        for name, module in replaced.items():
            for value in list(vars(module).values()):
                if (type(value) is FunctionType or _is_class(value)) and _module_of(value) == name:
                    self._old.add(id(value))

    def run(self, roots: list[tuple[object, str]], budget: int) -> str | None:
        # Every object seen, by id (held, so that ids stay unique), with its parent and the key it
        # was reached by: labels are only written for the one chain that is shown.
        seen: dict[int, object] = {}
        parents: dict[int, tuple[int, object]] = {}
        names: dict[int, str] = {}
        queue = _seed(roots, seen, names)
        old, old_namespaces, is_retired = self._old, self._old_namespaces, self._is_retired
        clock, until_look, next_yield = time.perf_counter, _YIELD_CHECK, time.perf_counter() + _YIELD_EVERY_S
        while queue and len(seen) < budget:
            until_look -= 1
            if not until_look:
                until_look = _YIELD_CHECK
                if clock() > next_yield:
                    time.sleep(_YIELD_SLEEP_S)  # a sleep, not sleep(0): that may take the lock straight back
                    next_yield = clock() + _YIELD_EVERY_S
            current = queue.popleft()
            parent = id(current)
            for child, key in self._children(current):
                kind = type(child)
                if kind in _ATOMS:
                    continue
                identity = id(child)
                if identity in seen:
                    continue
                seen[identity] = child
                parents[identity] = (parent, key)
                if identity in old or (
                    kind is FunctionType and (id(_globals(child)) in old_namespaces or is_retired(_code(child)))
                ):
                    chain = _chain(seen, parents, names, identity)
                    if key is not _NO_KEY:  # reached by a name: say what it names
                        chain += f" -> {_describe(child)}"
                    return f"{chain} (replaced)"
                if self._enters(child):
                    queue.append(child)
        return None

    def _enters(self, value: object) -> bool:
        kind = type(value)
        if issubclass(kind, ModuleType):
            return False  # a module is a root of its own, or installed code
        if issubclass(kind, type):
            return self._is_project(_module_of(value))
        if kind is FunctionType:
            return True  # its globals only if it is the project's (see _children)
        return str(kind.__module__).split(".")[0] != _OWN_PACKAGE

    def _children(self, value: Any) -> Iterator[tuple[object, object]]:
        """What ``value`` refers to, each with the key it is reached by (or a marker)."""
        kind = type(value)
        if kind is dict:
            return _entries(value)
        if kind in _COLLECTIONS:
            return ((item, _NO_KEY) for item in list(value))
        if kind is FunctionType:
            return self._function_parts(value)
        if kind is MethodType:
            return iter(((value.__func__, _NO_KEY), (value.__self__, _NO_KEY)))
        # A class's own dict, an instance's ``__dict__``: the dicts among the referents of an
        # object that is not a container are its attributes.
        return ((item, _ATTRIBUTES if type(item) is dict else _NO_KEY) for item in gc.get_referents(value))

    def _function_parts(self, function: Any) -> Iterator[tuple[object, object]]:
        for cell in function.__closure__ or ():
            try:
                yield cell.cell_contents, _NO_KEY
            except ValueError:  # an empty cell
                continue
        yield function.__defaults__, _NO_KEY
        yield function.__kwdefaults__, _NO_KEY
        yield function.__dict__, _NO_KEY
        if self._is_project(str(function.__globals__.get("__name__", ""))):
            yield function.__globals__, _NO_KEY


_COLLECTIONS = (list, tuple, set, frozenset)


def _seed(roots: list[tuple[object, str]], seen: dict[int, object], names: dict[int, str]) -> deque[object]:
    """The walk's first queue: each root once, named."""
    queue: deque[object] = deque()
    for root, name in roots:
        if id(root) not in seen:
            seen[id(root)] = root
            names[id(root)] = name
            queue.append(root)
    return queue


def _entries(mapping: dict[Any, Any]) -> Iterator[tuple[object, object]]:
    for key, item in list(mapping.items()):
        if type(key) is str:
            # Dunder entries (a module's spec and loader, pydantic's schemas) are the
            # machinery's: of those, only code itself (``__init__``, ``__call__``) is walked.
            if key[:2] == "__" and key[-2:] == "__" and not (type(item) is FunctionType or _is_class(item)):
                continue
        else:
            yield key, _NO_KEY
        yield item, key


def _is_class(value: object) -> bool:
    return issubclass(type(value), type)


def _globals(function: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = function.__globals__
    return namespace


def _code(function: Any) -> CodeType:
    code: CodeType = function.__code__
    return code


def _module_of(value: Any) -> str:
    """The module a function or class was defined in, read from its own dict, never computed."""
    if type(value) is FunctionType:
        return str(value.__module__)
    module = type.__dict__["__dict__"].__get__(value).get("__module__", "")
    return module if type(module) is str else ""


def _chain(seen: dict[int, object], parents: dict[int, tuple[int, object]], names: dict[int, str], found: int) -> str:
    """``app.registry.HANDLERS -> function app.plugin.handle``: the way from a root to ``found``."""
    steps: list[str] = []
    current = found
    while current in parents:
        parent, key = parents[current]
        if key is _NO_KEY:
            steps.append(f" -> {_describe(seen[current])}")
        elif key is _ATTRIBUTES:
            pass
        elif isinstance(key, str):
            steps.append(f".{key}")
        else:
            steps.append(f"[{key!r}]")
        current = parent
    steps.append(names[current])
    return "".join(reversed(steps))


def _describe(value: Any) -> str:
    kind = type(value)
    if kind is FunctionType:
        return f"function {value.__module__}.{value.__qualname__}"
    if issubclass(kind, type):
        return f"class {_module_of(value)}.{type.__dict__['__qualname__'].__get__(value)}"
    if issubclass(kind, ModuleType):
        namespace: Any = vars(ModuleType)["__dict__"]
        return f"module {namespace.__get__(value).get('__name__', '?')}"
    return kind.__name__

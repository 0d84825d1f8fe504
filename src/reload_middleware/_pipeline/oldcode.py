"""Old code at run time: once a version is retired, any run of its code is found and reported.

A replaced version's code can outlive it: a thread started at import loops in it; a scheduler, a
library's global (a tracer provider, a signal handler) or a logging handler holds one of its
functions and calls it. ``OldCode`` knows the code objects of every retired version still alive
(a module's top-level code object, recorded as it was executed, holds every function, class body
and lambda of that module version) and finds runs of them two ways:

- every thread's stack, at each reload's answer and each status: a thread that runs old code has
  it on its stack for as long as it runs it (any Python);
- ``sys.monitoring`` (Python 3.12+): start and resume events are enabled on the retired code
  objects only, so code that was not replaced runs exactly as fast as before; the first run of
  each reports itself and its events are turned off.

A run is not reported while the retired version still has requests (a websocket closed at
``retire_timeout`` finishes its handler), nor below the frame of an object ``keep()`` handed to
later versions: kept objects run their version's code by design.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import CodeType, FrameType, FunctionType, ModuleType
from typing import Any

from .._handover import kept_objects
from .leaks import Holder

logger = logging.getLogger(__name__)

_MONITORING = sys.version_info >= (3, 12)
_TOOL_IDS = (4, 3)  # the ids sys.monitoring leaves free (0, 1, 2 and 5 are named for others)
# Every thread keeps the sys.excepthook of the moment it was made, in a closure of this function:
# a thread pool's thread made while an old version's hook was set holds it, and never calls it.
_THREAD_FALLBACK_HOOK = "_make_invoke_excepthook.<locals>.invoke_excepthook"
_STACK_LINES = 8  # of a sighting's stack, the innermost ones kept


@dataclass(frozen=True)
class Sighting:
    """Code of a retired version that ran (or runs) after the version was replaced."""

    version: int
    function: str  # module.qualname
    file: str
    line: int
    thread: str  # "" for code found held, not running
    stack: tuple[str, ...]  # "file:line in function", outermost first; or the chain that holds it
    held_by: str = ""  # the chain from a library's global down to it, for code found held

    def describe(self) -> str:
        where = f"held by {self.held_by}" if self.held_by else f"in thread {self.thread!r}"
        return f"{self.function} of version {self.version} ({self.file}:{self.line}) {where}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "function": self.function,
            "file": self.file,
            "line": self.line,
            "thread": self.thread,
            "stack": list(self.stack),
            "held_by": self.held_by or None,
        }


@dataclass(frozen=True)
class _Origin:
    """Where a retired code object comes from."""

    code: weakref.ref[CodeType]
    version: int
    module: str
    busy: Callable[[], bool]  # the version still has requests: its code may run legitimately


class OldCode:
    """The code of retired versions still alive, and the runs of it after their retirement."""

    def __init__(self, on_sighting: Callable[[Sighting], None]) -> None:
        self._on_sighting = on_sighting
        self._lock = threading.Lock()
        self._module_code: weakref.WeakKeyDictionary[ModuleType, CodeType] = weakref.WeakKeyDictionary()
        self._retired: dict[int, _Origin] = {}  # by id(code): code objects compare by content
        self._exempt: set[int] = set()  # codes of kept objects (held by them: their ids stay theirs)
        self._reported: set[int] = set()
        self._seen: set[tuple[int, str]] = set()  # (version, function) reported, running or held
        self._cost_s = 0.0  # time spent watching retired code since the last take_cost_ms()

    # -- what the pipeline tells it ---------------------------------------------------------------

    def executed(self, modules: Iterable[ModuleType], module_code: Mapping[str, CodeType]) -> None:
        """``modules`` were just imported; ``module_code`` holds the top-level code each ran."""
        for module in modules:
            code = module_code.get(str(getattr(module, "__file__", None)))
            if code is not None:
                self._module_code[module] = code

    def retire(self, version: int, modules: Mapping[str, ModuleType], busy: Callable[[], bool]) -> None:
        """``modules`` are no longer served (their version retired): from now on, their code must not run."""
        started = time.perf_counter()
        codes: list[CodeType] = []
        for name, module in modules.items():
            code = self._module_code.pop(module, None)
            roots = [code] if code is not None else list(_namespace_code(module, name))
            for root in roots:
                for nested in _nested(root):
                    codes.append(nested)
                    self._retired[id(nested)] = _Origin(
                        weakref.ref(nested, _forget(self._retired, id(nested))), version, name, busy
                    )
        self._exempt.update(_kept_code())
        if _MONITORING and codes:
            _Monitor.watch(self, codes)
        self._cost_s += time.perf_counter() - started

    def take_cost_ms(self) -> float:
        """Milliseconds ``retire()`` took since the last call (for the reload's phases)."""
        cost, self._cost_s = self._cost_s, 0.0
        return cost * 1000

    def is_retired(self, code: CodeType) -> bool:
        """Whether ``code`` belongs to a retired version (for the stale walk)."""
        origin = self._retired.get(id(code))
        return origin is not None and origin.code() is code

    def in_threads(self, *, report: bool = True) -> list[Sighting]:
        """Old code on the stack of any other thread now; each is also reported (once), unless
        ``report`` is false: the caller reports them (a reload's answer)."""
        if not self._retired:
            return []
        found: list[Sighting] = []
        names = {thread.ident: thread.name for thread in threading.enumerate()}
        current = threading.get_ident()
        for ident, frame in sys._current_frames().items():
            if ident == current:
                continue
            sighting = self._sighting(frame, names.get(ident, str(ident)))
            if sighting is not None:
                found.append(sighting)
        for sighting in found:
            self._report(sighting, report)
        return found

    def held(self, version: int, holder: Holder) -> None:
        """Retired ``version`` is kept alive by ``holder``, a library's global: if the chain passes
        through its code (a function, a class, an instance of one), a library holds that code and
        may call it (a "first registration wins" global, a callback list): a stale event."""
        function = next(
            (item for item in reversed(holder.path) if type(item) is FunctionType and self.is_retired(item.__code__)),
            None,
        )
        if function is None or id(function.__code__) in self._exempt:
            return  # data of the old version, not its code: a leak only
        if any(getattr(item, "__qualname__", None) == _THREAD_FALLBACK_HOOK for item in holder.path):
            return  # a thread's copy of sys.excepthook, called only if sys.excepthook is unset
        with self._lock:
            if (version, f"{function.__module__}.{function.__qualname__}") in self._seen:
                return  # already seen running (a thread's target is held by its thread)
        outer = next((item for item in holder.path if self._is_old(item)), function)
        code = function.__code__
        chain = holder.describe()
        self._report(
            Sighting(
                version=version,
                function=f"{getattr(outer, '__module__', '?')}.{getattr(outer, '__qualname__', '?')}",
                file=code.co_filename,
                line=code.co_firstlineno,
                thread="",
                stack=tuple(chain.split(" -> ")),
                held_by=chain,
            )
        )

    def _is_old(self, item: object) -> bool:
        """``item`` is a function or a class of a retired version."""
        if type(item) is FunctionType:
            return self.is_retired(item.__code__)
        return isinstance(item, type) and any(self.is_retired(code) for code in _class_code(item))

    def close(self) -> None:
        _Monitor.forget(self)

    # -- finding -----------------------------------------------------------------------------------

    def _sighting(self, frame: FrameType, thread: str) -> Sighting | None:
        """The innermost retired code on ``frame``'s stack, unless a kept object's code is below it."""
        found: tuple[FrameType, _Origin] | None = None
        walk: FrameType | None = frame
        while walk is not None:
            identity = id(walk.f_code)
            if identity in self._exempt:
                return None
            origin = self._retired.get(identity)
            if found is None and origin is not None and origin.code() is walk.f_code and not origin.busy():
                found = (walk, origin)
            walk = walk.f_back
        if found is None:
            return None
        where, origin = found
        code = where.f_code
        return Sighting(
            version=origin.version,
            function=f"{origin.module}.{getattr(code, 'co_qualname', code.co_name)}",
            file=code.co_filename,
            line=where.f_lineno or code.co_firstlineno,
            thread=thread,
            stack=_stack(frame),
        )

    def on_event(self, code: CodeType, frame: FrameType) -> bool:
        """A monitored code object of ours started or resumed in ``frame``; ``True``: stop watching it."""
        if code.co_name == "__del__":
            return True  # an old object being freed: the end of old code, not a run of it
        sighting = self._sighting(frame, threading.current_thread().name)
        if sighting is None:
            return False  # legitimate (a kept object, a request of that version): watch on
        self._report(sighting)
        return True

    def _report(self, sighting: Sighting, report: bool = True) -> None:
        key = hash((sighting.version, sighting.function, sighting.thread))
        with self._lock:
            if key in self._reported:
                return
            self._reported.add(key)
            self._seen.add((sighting.version, sighting.function))
        if report:
            self._on_sighting(sighting)


def _forget(retired: dict[int, _Origin], identity: int) -> Callable[[object], None]:
    """A weak reference's callback: the code object died, its id may go to another one."""

    def forget(_reference: object) -> None:
        retired.pop(identity, None)

    return forget


def _nested(code: CodeType) -> Iterator[CodeType]:
    """``code`` and every code object compiled inside it (functions, class bodies, lambdas)."""
    stack = [code]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(const for const in current.co_consts if type(const) is CodeType)


def _namespace_code(module: ModuleType, name: str) -> Iterator[CodeType]:
    """A module imported where nothing recorded its execution (lazily, by a request): the code of
    the functions and classes its namespace defines."""
    for value in list(vars(module).values()):
        if type(value) is FunctionType and value.__module__ == name:
            yield value.__code__
        elif isinstance(value, type) and value.__module__ == name:
            yield from _class_code(value)


def _class_code(cls: type) -> Iterator[CodeType]:
    for member in list(vars(cls).values()):
        function = getattr(member, "__func__", member)  # staticmethod, classmethod
        if type(function) is FunctionType:
            yield function.__code__
        elif isinstance(member, property):
            yield from (part.__code__ for part in (member.fget, member.fset, member.fdel) if type(part) is FunctionType)


def _kept_code() -> set[int]:
    """Code that objects handed over by ``keep()`` run: a kept function, a kept thread's target,
    the methods of a kept object's class."""
    codes: set[int] = set()
    for value in kept_objects():
        if isinstance(value, threading.Thread):
            # Its target only (gone once it ended): threading's own methods are on every
            # thread's stack, and exempting them would hide old code in all threads.
            value = getattr(value, "_target", None)
            if value is None:
                continue
        if type(value) is FunctionType:
            codes.update(id(code) for code in _nested(value.__code__))
        elif not isinstance(value, type | ModuleType) and hasattr(type(value), "__dict__"):
            codes.update(id(code) for method in _class_code(type(value)) for code in _nested(method))
    return codes


def _stack(frame: FrameType) -> tuple[str, ...]:
    lines: list[str] = []
    walk: FrameType | None = frame
    while walk is not None and len(lines) < _STACK_LINES:
        lines.append(f"{walk.f_code.co_filename}:{walk.f_lineno} in {walk.f_code.co_name}")
        walk = walk.f_back
    return tuple(reversed(lines))


class _Monitor:
    """This process's ``sys.monitoring`` tool (one, whatever the number of pipelines): start and
    resume events, on retired code objects only, each handed to the ``OldCode`` that owns it."""

    _instance: _Monitor | None = None
    _unavailable = False
    _lock = threading.Lock()

    def __init__(self, tool: int) -> None:
        monitoring: Any = getattr(sys, "monitoring")  # noqa: B009 (3.12+; mypy checks for 3.11)
        self._monitoring = monitoring
        self._tool = tool
        self._events = monitoring.events.PY_START | monitoring.events.PY_RESUME
        self._owners: weakref.WeakSet[OldCode] = weakref.WeakSet()
        for event in (monitoring.events.PY_START, monitoring.events.PY_RESUME):
            monitoring.register_callback(tool, event, self._callback)

    @classmethod
    def watch(cls, owner: OldCode, codes: Iterable[CodeType]) -> None:
        with cls._lock:
            if cls._instance is None and not cls._unavailable:
                cls._instance = cls._acquire()
                cls._unavailable = cls._instance is None
            monitor = cls._instance
        if monitor is not None:
            monitor._owners.add(owner)
            for code in codes:
                monitor._monitoring.set_local_events(monitor._tool, code, monitor._events)

    @classmethod
    def forget(cls, owner: OldCode) -> None:
        if cls._instance is not None:
            cls._instance._owners.discard(owner)

    @classmethod
    def _acquire(cls) -> _Monitor | None:
        monitoring: Any = getattr(sys, "monitoring")  # noqa: B009
        for tool in _TOOL_IDS:
            if monitoring.get_tool(tool) is None:
                monitoring.use_tool_id(tool, "reload_middleware")
                return cls(tool)
        logger.warning("sys.monitoring has no free tool id: old code is looked for on thread stacks only")
        return None

    def _callback(self, code: CodeType, _offset: int) -> object:
        try:
            owner = next((owner for owner in list(self._owners) if owner.is_retired(code)), None)
            done = owner is None or owner.on_event(code, sys._getframe(1))
        except Exception:  # never let a look for old code break the code it looks at
            logger.exception("could not report a run of old code")
            done = True
        return self._monitoring.DISABLE if done else None

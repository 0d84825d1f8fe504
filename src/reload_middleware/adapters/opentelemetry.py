"""OpenTelemetry: its global providers are set once per process ("first registration wins"), so a
reloaded module's ``trace.set_tracer_provider(...)`` was refused and every request kept running the
first version's provider, exporters and all. Before a group that sets a provider is imported
anew, the global is cleared so that the new modules can set theirs; a provider nobody set again
(a module outside the group set it) comes back at the commit, as does the old one after a
discarded build. The provider a reload replaced is shut down when its version retires, which
stops its exporters' threads."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from . import namespace_values

FRAMEWORK = "opentelemetry"

# (API module, its public name, its provider global, the Once that guards it, the function that sets it)
_GLOBALS = (
    (
        "opentelemetry.trace",
        "opentelemetry.trace",
        "_TRACER_PROVIDER",
        "_TRACER_PROVIDER_SET_ONCE",
        "set_tracer_provider",
    ),
    (
        "opentelemetry.metrics._internal",
        "opentelemetry.metrics",
        "_METER_PROVIDER",
        "_METER_PROVIDER_SET_ONCE",
        "set_meter_provider",
    ),
    (
        "opentelemetry._logs._internal",
        "opentelemetry._logs",
        "_LOGGER_PROVIDER",
        "_LOGGER_PROVIDER_SET_ONCE",
        "set_logger_provider",
    ),
)


@dataclass(frozen=True)
class _Cleared:
    """A provider global a build cleared, and the provider it held."""

    api: ModuleType
    attribute: str
    once: str
    provider: Any

    def put_back(self) -> None:
        from opentelemetry.util._once import Once

        setattr(self.api, self.attribute, self.provider)
        done = Once()
        done._done = True
        setattr(self.api, self.once, done)


_cleared: list[_Cleared] = []  # by the build under way
_replaced: list[Any] = []  # providers a reload replaced: shut down when the old version retires


def release(modules: Mapping[str, ModuleType]) -> Callable[[], None]:
    from opentelemetry.util._once import Once

    held = namespace_values(modules)
    cleared: list[_Cleared] = []
    for api_name, public_name, attribute, once, setter in _GLOBALS:
        api = sys.modules.get(api_name)
        provider = getattr(api, attribute, None)
        if api is None or provider is None:
            continue
        # Only for a group that may set it again: it holds the provider, the setter or the API.
        if {id(provider), id(getattr(api, setter, None)), id(sys.modules.get(public_name))} & held.keys():
            setattr(api, attribute, None)
            setattr(api, once, Once())
            cleared.append(_Cleared(api, attribute, once, provider))
    _cleared[:] = cleared

    def undo() -> None:
        _cleared.clear()
        for entry in cleared:
            entry.put_back()

    return undo


def committed() -> None:
    """The new modules are in: a provider they did not set again stays the old one."""
    cleared = list(_cleared)
    _cleared.clear()
    for entry in cleared:
        current = getattr(entry.api, entry.attribute)
        if current is None:
            entry.put_back()
        elif current is not entry.provider:
            _replaced.append(entry.provider)


def retire(modules: Mapping[str, ModuleType]) -> None:
    replaced = list(_replaced)
    _replaced.clear()
    for provider in replaced:
        shutdown = getattr(provider, "shutdown", None)
        if callable(shutdown):
            shutdown()

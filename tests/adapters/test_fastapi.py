"""The cache clearing at a version's retirement, in-process: FastAPI's, Starlette's and pydantic's
module-level caches, and typing's, let go of what they hold; other libraries' caches are left."""

from __future__ import annotations

import functools
import sys
import types
import typing
from collections.abc import Iterator

import pytest

from reload_middleware import adapters


@pytest.fixture
def cached_modules() -> Iterator[tuple[types.ModuleType, types.ModuleType]]:
    """A module named as a part of FastAPI, and one of another library, each with a cache."""
    framework, other = types.ModuleType("fastapi._test_retired"), types.ModuleType("otherlib._test_retired")
    for module in (framework, other):
        module.lookup = functools.lru_cache(maxsize=None)(lambda key: [key])  # type: ignore[attr-defined]
        sys.modules[module.__name__] = module
    yield framework, other
    for module in (framework, other):
        del sys.modules[module.__name__]


def test_retiring_empties_the_frameworks_caches_and_no_others(
    cached_modules: tuple[types.ModuleType, types.ModuleType],
) -> None:
    framework, other = cached_modules
    for module in cached_modules:
        module.lookup("an endpoint of the old version")
    adapters.retired()
    assert framework.lookup.cache_info().currsize == 0
    assert other.lookup.cache_info().currsize == 1


T = typing.TypeVar("T")


class Box(typing.Generic[T]):
    pass


def test_retiring_empties_typings_caches() -> None:
    class Model:  # a class of a version that retires
        pass

    alias = Box[Model]
    assert Box[Model] is alias  # typing caches parametrised aliases: the same object comes back
    adapters.retired()
    assert Box[Model] is not alias

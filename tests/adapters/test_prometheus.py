"""prometheus_client, in-process: metrics a module declared leave their registry before it is
imported anew and come back on a rollback; metrics it only imported stay."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from reload_middleware.adapters import prometheus


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def shared(registry: CollectorRegistry) -> Iterator[types.ModuleType]:
    """A module outside the group that declared a metric the group imports."""
    module = types.ModuleType("prometheus_test_shared")
    module.SHARED = Counter("shared", "declared outside the group", registry=registry)  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


def declaring(registry: CollectorRegistry, shared: types.ModuleType) -> types.ModuleType:
    module = types.ModuleType("prometheus_test_views")
    module.HITS = Counter("hits", "declared here", registry=registry)  # type: ignore[attr-defined]
    module.SHARED = shared.SHARED  # type: ignore[attr-defined]
    return module


def names(registry: CollectorRegistry) -> list[str]:
    return sorted(metric.name for metric in registry.collect())


def test_declared_metrics_leave_and_come_back_on_a_rollback(
    registry: CollectorRegistry, shared: types.ModuleType
) -> None:
    old = declaring(registry, shared)
    undo = prometheus.release({"views": old})
    assert names(registry) == ["shared"]  # the imported one stays: nothing would declare it again
    declaring(registry, shared)  # the new import declares the same names: no "Duplicated timeseries"
    undo()  # that build was discarded
    assert names(registry) == ["hits", "shared"]
    assert registry._names_to_collectors["hits_total"] is old.HITS

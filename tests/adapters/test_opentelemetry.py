"""OpenTelemetry, in-process: the global tracer provider, set once per process, can be set again
by a reloaded module that set it; it stays when no new module sets it, comes back on a rollback,
and the replaced one is shut down at its version's retirement."""

from __future__ import annotations

import types
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.util._once import Once

from reload_middleware.adapters import opentelemetry


@pytest.fixture
def first() -> Iterator[TracerProvider]:
    saved = trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = None, Once()
    provider = TracerProvider()
    trace.set_tracer_provider(provider)
    yield provider
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = saved


def setting(provider: TracerProvider) -> types.ModuleType:
    module = types.ModuleType("otel_test_telemetry")
    module.trace, module.provider = trace, provider  # type: ignore[attr-defined]
    return module


class Exporter(SpanExporter):
    shut_down = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.shut_down = True


def test_a_module_that_set_the_provider_sets_it_again(first: TracerProvider) -> None:
    exporter = Exporter()
    first.add_span_processor(SimpleSpanProcessor(exporter))
    opentelemetry.release({"telemetry": setting(first)})
    second = TracerProvider()
    trace.set_tracer_provider(second)  # the new import: not refused
    opentelemetry.committed()
    assert trace.get_tracer_provider() is second
    opentelemetry.retire({})
    assert exporter.shut_down  # the replaced provider shut down, its exporters with it
    trace.set_tracer_provider(TracerProvider())  # once set, set once: as in a fresh process
    assert trace.get_tracer_provider() is second


def test_a_provider_the_new_modules_did_not_set_again_stays(first: TracerProvider) -> None:
    opentelemetry.release({"telemetry": setting(first)})
    opentelemetry.committed()
    assert trace.get_tracer_provider() is first


def test_a_rollback_puts_the_provider_back(first: TracerProvider) -> None:
    undo = opentelemetry.release({"telemetry": setting(first)})
    trace.set_tracer_provider(TracerProvider())  # the discarded build's
    undo()
    assert trace.get_tracer_provider() is first


def test_a_group_that_never_touches_opentelemetry_leaves_it_alone(first: TracerProvider) -> None:
    opentelemetry.release({"plain": types.ModuleType("plain")})
    assert trace.get_tracer_provider() is first

"""What a module registers at import with a library's process-wide registry (metrics, schedulers,
a global tracer provider) is its own: after three edits the server runs what a fresh process
importing the same sources runs, with no reload refused and no old version's code still running."""

from __future__ import annotations

import pytest
from apps import STARLETTE_APP, write_app, write_semantic_app
from harness import AppTree, ServerFactory, fresh_get, fresh_report, wait_until


def edited_three_times(tree: AppTree, serve: ServerFactory, files: dict[str, str], edited: str) -> object:
    """Serve ``files`` (``{edition}`` in ``edited`` numbered 1), edit ``edited`` to editions 2, 3
    and 4, each reloaded by POST and ok; returns what a fresh process computes then."""
    write_semantic_app(tree, {**files, edited: files[edited].format(edition=1)})
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    for edition in (2, 3, 4):
        tree.write(edited, files[edited].format(edition=edition))
        answer = server.client.post("/__reload").json()
        assert answer["ok"] is True, (answer["error"], server.log())
    expected = fresh_report(tree.root, tree.name)
    wait_until(lambda: server.client.get("/").json() == expected, explain=lambda: server.client.get("/").json())
    status = server.status()
    assert (status["failures"], status["old_code"]) == (0, [])
    return expected


PROMETHEUS = {
    "views.py": """
        from prometheus_client import Counter, Histogram

        EDITION = {edition}
        HITS = Counter("hits", "Requests served")
        TIMINGS = {{"render": Histogram("render_seconds", "Time to render")}}
    """,
    "report.py": """
        from prometheus_client import REGISTRY

        import PKG.views


        def report():
            PKG.views.HITS.inc()
            return sorted(metric.name for metric in REGISTRY.collect() if metric.name in ("hits", "render_seconds"))
    """,
}


def test_prometheus_metrics_declared_at_import_are_declared_again(tree: AppTree, serve: ServerFactory) -> None:
    assert edited_three_times(tree, serve, PROMETHEUS, "views.py") == ["hits", "render_seconds"]


APSCHEDULER = {
    "runs.py": """
        RUNS = []
    """,
    "shared.py": """
        from apscheduler.schedulers.background import BackgroundScheduler

        scheduler = BackgroundScheduler()
        scheduler.start()
    """,
    "jobs.py": """
        from apscheduler.schedulers.background import BackgroundScheduler

        from PKG.runs import RUNS
        from PKG.shared import scheduler as shared

        EDITION = {edition}
        own = BackgroundScheduler()
        own.add_job(lambda: RUNS.append(f"own {{EDITION}}"), "interval", seconds=0.02)
        own.start()


        @shared.scheduled_job("interval", seconds=0.02)
        def tick():
            RUNS.append(f"shared {{EDITION}}")
    """,
    "report.py": """
        import time

        import PKG.jobs
        from PKG.runs import RUNS


        def report():
            time.sleep(0.2)  # every job runs
            RUNS.clear()
            time.sleep(0.3)
            return sorted(set(RUNS))
    """,
}


def test_apscheduler_jobs_of_a_replaced_version_stop(tree: AppTree, serve: ServerFactory) -> None:
    assert edited_three_times(tree, serve, APSCHEDULER, "jobs.py") == ["own 4", "shared 4"]


OPENTELEMETRY = {
    "telemetry.py": """
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({{"service.version": "{edition}"}}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    """,
    "report.py": """
        import threading

        from opentelemetry import trace

        import PKG.telemetry


        def report():
            with trace.get_tracer("report").start_as_current_span("report") as span:
                version = span.resource.attributes["service.version"]
            exporters = sum(thread.name.startswith("OtelBatch") for thread in threading.enumerate())
            return {"version": version, "exporter_threads": exporters}
    """,
}


@pytest.mark.timeout(120)
def test_an_opentelemetry_provider_set_at_import_is_set_again(tree: AppTree, serve: ServerFactory) -> None:
    assert edited_three_times(tree, serve, OPENTELEMETRY, "telemetry.py") == {"version": "4", "exporter_threads": 1}


# The issue's own case: a FastAPI app instrumented at import, its provider set there too.
INSTRUMENTED_FASTAPI = """
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

EDITION = "{edition}"
exporter = InMemorySpanExporter()
provider = TracerProvider(resource=Resource.create({{"service.version": EDITION}}))
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
app = FastAPI()


@app.get("/")
def home():
    with trace.get_tracer(__name__).start_as_current_span("work"):
        pass
    return sorted({{span.resource.attributes["service.version"] for span in exporter.get_finished_spans()}})


FastAPIInstrumentor.instrument_app(app)
"""


def test_an_instrumented_fastapi_app_exports_through_its_own_provider(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, {"__init__.py": "", "asgi.py": STARLETTE_APP["asgi.py"]})
    tree.write("main.py", INSTRUMENTED_FASTAPI.format(edition=1))
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    assert server.client.get("/").json() == ["1"]
    for edition in (2, 3, 4):
        tree.write("main.py", INSTRUMENTED_FASTAPI.format(edition=edition))
        answer = server.client.post("/__reload").json()
        assert answer["ok"] is True, answer["error"]
    fresh = fresh_get(tree.root, f"{tree.name}.main:app", "/")
    assert fresh == (200, '["4"]')
    assert server.client.get("/").text == fresh[1]
    assert server.status()["old_code"] == []

"""Benchmarks of reload_middleware side by side with its peers, measured in one run.

`make bench` runs this. Everything targets 127.0.0.1 and every loop is bounded. Results go to
benchmarks/results.md (tables) and benchmarks/results.png (chart), with the machine and versions.

Sections:
  edit-to-serve   from a file write to the first response with the new code, leaf and common edits,
                  this package against `uvicorn --reload` (and `uvicorn-hmr` where installable)
  repaint         live refresh: from a save to the browser showing it (median of 10)
  failures        failed or refused requests of 20 concurrent clients during 10 reloads
  throughput      a minimal endpoint under wrk: bare app, disabled middleware, enabled middleware
  memory          resident size after 1 and after 200 reloads, and leaked versions
  growth          edit-to-serve and per-request overhead against app size (50, 200, 800 modules)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from generate import PACKAGE, count_modules, generate, orm_source  # noqa: E402
from harness import Server  # noqa: E402

BIN = Path(sys.executable).parent
LEAF = f"{PACKAGE}/leaf.py"
COMMON = f"{PACKAGE}/common.py"
ORM = f"{PACKAGE}/orm.py"
# What a save of each edited module writes (with a marker the response must then show), and where.
EDITS: dict[str, tuple[Callable[[str], str], str]] = {
    LEAF: (lambda marker: f"MESSAGE = '{marker}'\n", "/leaf"),
    COMMON: (lambda marker: f"PREFIX = '{marker}'\nPAGE_SIZE = 20\n", "/items/0"),
    ORM: (lambda marker: orm_source(f"c_{marker}"), "/orders/columns"),
}


# uvicorn-hmr 0.1.1.8 in issue #15's side-by-side run (Python 3.13, the same generated app, median
# ms from save to serve): cited where uvicorn-hmr cannot be installed (it needs Python >= 3.12).
HMR_CITED = {"leaf": 97.0, "common": 101.0}
# main before run-time detection of old code (issue #24): its sources serve the same edits, side
# by side with this tree's, in alternating rounds of one run (the machine's speed varies by tens of
# per cent between runs: only a ratio measured in one run says "no worse than before").
BEFORE_OLD_CODE = "be3371a"
# Phases of a reload as the status reports them (``last_reload.phases_ms``), in order, and what
# each is; "detect" and "served" are measured around them (see ``phase_profile``).
PHASES = {
    "detect": "from the write to the attempt's request (the watcher)",
    "queued": "from the request to the attempt's start",
    "plan": "which modules to reload",
    "build": "importing the group: the app's own code",
    "start": "the new version's lifespan startup: the app's",
    "warm_up": "one request to the new app: the framework's lazy set-up",
    "commit": "bookkeeping: what the version was built from",
    "drain": "waiting for the old version's requests",
    "served": "from the swap to the client's response with the new code",
}
OWN_PHASES = ("detect", "queued", "plan", "commit", "drain")
# After the swap, not in save-to-serve (the reload's answer waits for them): guarantee 7.
AFTER_SWAP = {
    "retire": "the old version's shutdown, hooks and adapters; its code watched from then on",
    "old_code": "the replaced code watched (sys.monitoring, 3.12+) and every thread's stack looked at for it",
    "stale_check": "the walk from the new app for references to replaced code",
}


@dataclass
class Results:
    rows: dict[str, list[list[str]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    chart: dict[str, dict[str, float]] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)  # for the goals

    def table(self, name: str, header: list[str]) -> list[list[str]]:
        self.rows[name] = [header]
        return self.rows[name]


# -- servers ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class UvicornReload:
    """`uvicorn --reload`, as people run it: it binds its own port and restarts a worker process."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(root / "uvicorn-reload.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                str(BIN / "uvicorn"),
                f"{PACKAGE}.main:app",
                "--reload",
                "--reload-dir",
                PACKAGE,
                "--port",
                str(self.port),
            ],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, timeout=10)
        wait(lambda: _answers(self.client, "/ping"), 60)

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.log.close()


def ours(root: Path, wrapper: str = "asgi", **env: str) -> Server:
    server = Server(
        f"{PACKAGE}.{wrapper}:app",
        root,
        {**os.environ, "PYTHONPATH": str(root), "RELOAD_MIDDLEWARE": "1", **env},
        ["log_level=warning"],
    )
    server.wait_ready("/ping", timeout=60)
    if wrapper == "asgi" and env.get("RELOAD_MIDDLEWARE_WATCH") != "0":
        wait(lambda: server.status()["watching"], 30)
    return server


def _answers(client: httpx.Client, path: str) -> bool:
    try:
        return client.get(path, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait(predicate: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s")
        time.sleep(0.01)


@contextmanager
def app_tree(modules: int) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="reload-bench-") as directory:
        root = Path(directory)
        generate(root, modules)
        yield root


# -- measurements ----------------------------------------------------------------------------------


def edit_to_serve(
    root: Path,
    client: httpx.Client,
    edits: int,
    target: str,
    status: Callable[[], dict[str, Any]] | None = None,
    phases: list[dict[str, float]] | None = None,
) -> tuple[list[float], int]:
    """Save `target` `edits` times; for each, ms from the write to the first response showing it.
    Also counts the requests that failed meanwhile (a restarting server refuses connections), and
    with `status` (this package's), appends each reload's phases to `phases`."""
    latencies: list[float] = []
    failed = 0
    for number in range(1, edits + 1):
        marker = f"{target.split('/')[-1][:-3]}{number}_{time.monotonic_ns()}"
        time.sleep(0.3)  # a pause between saves, as a person makes
        render, path = EDITS[target]
        source, expected = render(marker), marker
        written, written_at = time.perf_counter(), time.time()
        _save(root / target, source)
        deadline = written + 60
        while True:
            try:
                response = client.get(path, timeout=10)
                if response.status_code == 200 and expected in response.text:
                    break
                if response.status_code != 200:
                    failed += 1
            except httpx.HTTPError:
                failed += 1
            if time.perf_counter() > deadline:
                raise TimeoutError(f"edit {number} of {target} not served within 60 s")
            time.sleep(0.002)
        latencies.append((time.perf_counter() - written) * 1000)
        if status is not None and phases is not None:
            # The stale check runs after the swap: its figure is in the record once it ends.
            record = status()["last_reload"]
            for _ in range(500):
                if "stale_check" in record["phases_ms"]:
                    break
                time.sleep(0.01)
                record = status()["last_reload"]
            phases.append(phase_profile(record, written_at, latencies[-1]))
    return latencies, failed


def phase_profile(record: dict[str, Any], written_at: float, latency_ms: float) -> dict[str, float]:
    """A reload's phases (ms), with the time before it (the write to its request) and after it (the
    swap to the client's response): together they add up to the save-to-serve time."""
    phases = dict(record["phases_ms"])
    after_swap = {name: phases.pop(name) for name in AFTER_SWAP if name in phases}
    swapped_at = record["time"]  # recorded just before the swap
    started_at = swapped_at - record["duration_ms"] / 1000
    profile = {"detect": (started_at - written_at) * 1000 - phases.get("queued", 0.0), **phases}
    profile["served"] = latency_ms - (swapped_at - written_at) * 1000
    return {**profile, **after_swap}


def _save(path: Path, source: str) -> None:
    temporary = path.with_name(f".{path.name}.saving")
    temporary.write_text(source)
    temporary.replace(path)


def failures_under_load(root: Path, url: str, reloads: int, serve_check: Callable[[str], bool]) -> tuple[int, int]:
    """20 concurrent clients while `reloads` edits land (the 4th broken, the 5th repairing it)."""
    stop = threading.Event()
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for _ in range(20_000):
                if stop.is_set():
                    return
                try:
                    ok = http.get("/leaf").status_code == 200
                except httpx.HTTPError:
                    ok = False
                    time.sleep(0.01)  # a refused connection returns at once: do not spin
                with lock:
                    counts["ok" if ok else "failed"] += 1

    threads = [threading.Thread(target=client) for _ in range(20)]
    for thread in threads:
        thread.start()
    try:
        for number in range(reloads):
            time.sleep(0.3)
            if number == 3:
                _save(root / LEAF, "MESSAGE = 'broken'\ndef oops(:\n")
                time.sleep(1.5)
                continue
            marker = f"load{number}-{time.monotonic_ns()}"
            _save(root / LEAF, f"MESSAGE = '{marker}'\n")
            wait(lambda: serve_check(marker), 60)  # noqa: B023
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    return counts["ok"], counts["failed"]


def _shows(url: str) -> Callable[[str], bool]:
    def shows(marker: str) -> bool:
        try:
            return marker in httpx.get(f"{url}/leaf", timeout=10).text
        except httpx.HTTPError:
            return False

    return shows


def wrk(url: str, seconds: int) -> float:
    """Requests per second from wrk (2 threads, 32 connections) against `url`."""
    output = subprocess.run(
        ["taskset", "-c", str(CLIENT_CPU), "wrk", "-t2", "-c32", f"-d{seconds}s", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if match is None:
        raise RuntimeError(f"no figure in wrk's output:\n{output}")
    return float(match.group(1))


# The server on one core, wrk on the other: each figure is then the server's alone.
SERVER_CPU, CLIENT_CPU = 0, 1


def pin(pid: int, cpu: int) -> None:
    """Every thread of process ``pid`` on ``cpu`` (threads made later inherit it)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(task), {cpu})
        except ProcessLookupError:
            continue  # a thread that just ended


def wake_ups(pid: int) -> int:
    """How many times the kernel has switched the threads of process ``pid`` in, so far."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as status:
                total += sum(int(line.split()[1]) for line in status if "ctxt_switches" in line)
        except OSError:
            continue
    return total


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def server_pid(server: Server) -> int:
    return server.process.pid


# -- sections --------------------------------------------------------------------------------------


def section_edit_to_serve(results: Results, edits: int) -> None:
    table = results.table(
        "Edit-to-serve (200-module FastAPI app; ms from the file write to the first response with the new code)",
        ["edit", "tool", "median", "p10-p90", "max", "failed requests meanwhile", "ratio to ours"],
    )
    profiles: dict[str, dict[str, float]] = {}
    for target, label in ((LEAF, "leaf"), (COMMON, "module imported by many"), (ORM, "ORM model module")):
        short = {LEAF: "leaf", COMMON: "common", ORM: "orm"}[target]
        medians: dict[str, float] = {}
        for tool in ("reload_middleware", "uvicorn --reload"):
            phases: list[dict[str, float]] = []
            with app_tree(200) as root:
                server: Server | UvicornReload = ours(root) if tool == "reload_middleware" else UvicornReload(root)
                try:
                    status = server.status if isinstance(server, Server) else None
                    latencies, failed = edit_to_serve(root, server.client, edits, target, status, phases)
                finally:
                    server.stop()
            medians[tool] = statistics.median(latencies)
            if phases:
                profiles[label] = {name: statistics.median(p.get(name, 0.0) for p in phases) for name in phases[0]}
                profiles[label]["total"] = medians[tool]
            deciles = statistics.quantiles(latencies, n=10)
            table.append(
                [
                    label,
                    tool,
                    f"{medians[tool]:.0f}",
                    f"{deciles[0]:.0f}-{deciles[-1]:.0f}",
                    f"{max(latencies):.0f}",
                    str(failed),
                    f"{medians[tool] / medians['reload_middleware']:.1f}x",
                ]
            )
        hmr = HMR_CITED.get(short)
        cited = f"{hmr:.0f} (cited, #15)" if hmr else "not measured"
        table.append([label, "uvicorn-hmr", cited, "", "", "", "needs Python >= 3.12"])
        results.values[f"{short} ours"] = medians["reload_middleware"]
        results.values[f"{short} uvicorn"] = medians["uvicorn --reload"]
        results.values[f"{short} own"] = sum(profiles[label].get(name, 0.0) for name in OWN_PHASES)
        results.values[f"{short} old_code"] = profiles[label].get("old_code", 0.0)
        results.chart.setdefault("edit-to-serve, median ms (log)", {}).update(
            {
                f"{short}: {'ours' if tool == 'reload_middleware' else 'uvicorn'}": value
                for tool, value in medians.items()
            }
        )
    results.notes.append(
        "uvicorn-hmr, the closest in-process peer, could not be installed: every release requires Python >= 3.12 "
        f"(its `hmr` dependency too) and this machine runs Python {platform.python_version()}; its figures are "
        "cited from issue #15's side-by-side run (Python 3.13, the same generated app)."
    )
    _profile_table(
        results, "Where a reload's time goes (200 modules; median ms of each phase over the edits)", profiles
    )


def _profile_table(results: Results, title: str, profiles: dict[str, dict[str, float]]) -> None:
    labels = list(profiles)
    table = results.table(title, ["phase", *labels, "what it is"])
    for name, meaning in [*PHASES.items(), *((name, f"after the swap: {what}") for name, what in AFTER_SWAP.items())]:
        table.append([name, *(f"{profiles[label].get(name, 0.0):.1f}" for label in labels), meaning])
    table.append(
        [
            "our own work",
            *(f"{sum(profiles[label].get(n, 0.0) for n in OWN_PHASES):.1f}" for label in labels),
            " + ".join(OWN_PHASES),
        ]
    )
    table.append(
        [
            "save to serve",
            *(f"{profiles[label]['total']:.1f}" for label in labels),
            "the phases above add up to it, but those after the swap",
        ]
    )


def section_before(results: Results, edits: int, rounds: int) -> None:
    """The leaf edit served by this tree and by ``BEFORE_OLD_CODE``'s sources, alternating."""
    table = results.table(
        f"Leaf edit, this tree against main before #24 ({BEFORE_OLD_CODE}): {rounds} alternating rounds "
        f"of {edits} edits",
        ["sources", "median ms", "medians of the rounds"],
    )
    with tempfile.TemporaryDirectory(prefix="reload-bench-before-") as scratch:
        archive = subprocess.run(
            ["git", "-C", str(HERE.parent), "archive", BEFORE_OLD_CODE, "src"], capture_output=True, check=False
        )
        if archive.returncode != 0:
            results.notes.append(f"main before #24 ({BEFORE_OLD_CODE}) is not in this checkout: not compared")
            return
        subprocess.run(["tar", "-x", "-C", scratch], input=archive.stdout, check=True)
        sources = {"this tree": None, f"before #24 ({BEFORE_OLD_CODE})": Path(scratch) / "src"}
        latencies: dict[str, list[float]] = {label: [] for label in sources}
        rounds_ms: dict[str, list[float]] = {label: [] for label in sources}
        for _ in range(rounds):
            for label, src in sources.items():
                with app_tree(200) as root:
                    # Our package from ``src`` first on the path, ahead of the installed one.
                    path = {"PYTHONPATH": f"{root}{os.pathsep}{src}"} if src is not None else {}
                    server = ours(root, **path)
                    try:
                        measured, _ = edit_to_serve(root, server.client, edits, LEAF)
                    finally:
                        server.stop()
                latencies[label] += measured
                rounds_ms[label].append(statistics.median(measured))
    for label in sources:
        rounds_text = ", ".join(f"{ms:.0f}" for ms in rounds_ms[label])
        table.append([label, f"{statistics.median(latencies[label]):.1f}", rounds_text])
    now, before = (statistics.median(latencies[label]) for label in sources)
    results.values["leaf now"], results.values["leaf before"] = now, before


def section_repaint(results: Results, edits: int) -> None:
    """Live refresh: from a save to the browser showing it, next to the save-to-serve time."""
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(HERE.parent / "tests" / "e2e"))
    from test_browser import CHROMIUM, CHROMIUM_ARGS

    table = results.table(
        f"Save to repaint (200-module app, live refresh, headless Chromium; {edits} leaf edits each)",
        ["measured", "median ms", "p10-p90"],
    )
    with app_tree(200) as root:
        server = ours(root, RELOAD_MIDDLEWARE_LIVE_REFRESH="1")
        try:
            served, _ = edit_to_serve(root, server.client, edits, LEAF)
            repainted: list[float] = []
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                page = browser.new_page()
                page.goto(f"{server.url}/page")
                for number in range(edits):
                    marker = f"repaint{number}_{time.monotonic_ns()}"
                    time.sleep(0.3)
                    written = time.perf_counter()
                    _save(root / LEAF, f"MESSAGE = '{marker}'\n")
                    page.wait_for_function(f"document.querySelector('h1')?.textContent === '{marker}'", timeout=30_000)
                    repainted.append((time.perf_counter() - written) * 1000)
                browser.close()
        finally:
            server.stop()
    for label, values in (("save to serve (HTTP client polling)", served), ("save to repaint (browser)", repainted)):
        deciles = statistics.quantiles(values, n=10)
        table.append([label, f"{statistics.median(values):.0f}", f"{deciles[0]:.0f}-{deciles[-1]:.0f}"])


def section_failures(results: Results, reloads: int) -> None:
    table = results.table(
        f"Requests of 20 concurrent clients during {reloads} reloads (one broken, then fixed; 200 modules)",
        ["tool", "served", "failed or refused"],
    )
    for tool in ("reload_middleware", "uvicorn --reload"):
        with app_tree(200) as root:
            server: Server | UvicornReload = ours(root) if tool == "reload_middleware" else UvicornReload(root)
            try:
                served, failed = failures_under_load(root, server.url, reloads, _shows(server.url))
            finally:
                server.stop()
        table.append([tool, str(served), str(failed)])


def section_throughput(results: Results, seconds: int, rounds: int) -> None:
    table = results.table(
        f"Throughput of a minimal endpoint (wrk, 2 threads, 32 connections; {rounds} alternating rounds of "
        f"{seconds} s; server pinned to one core, wrk to the other; 200 modules)",
        ["setup", "median requests/s", "best", "range", "ratio to bare (medians)"],
    )
    wrappers = {"bare app": "main", "disabled middleware": "disabled", "enabled middleware": "asgi"}
    figures: dict[str, list[float]] = {setup: [] for setup in wrappers}
    with app_tree(200) as root:
        order = list(wrappers.items())
        for round_number in range(rounds):
            # Rotate the order every round: drift of the machine, and whatever favours the first
            # or the last server of a round, then hit every setup alike.
            shift = round_number % len(order)
            for setup, wrapper in order[shift:] + order[:shift]:
                server = ours(root, wrapper)
                try:
                    pin(server_pid(server), SERVER_CPU)
                    wrk(f"{server.url}/ping", 1)  # warm up
                    figures[setup].append(wrk(f"{server.url}/ping", seconds))
                finally:
                    server.stop()
    bare = statistics.median(figures["bare app"])
    for setup, values in figures.items():
        median = statistics.median(values)
        table.append(
            [
                setup,
                f"{median:.0f}",
                f"{max(values):.0f}",
                f"{min(values):.0f}-{max(values):.0f}",
                f"{median / bare:.3f}",
            ]
        )
        results.values[f"throughput {setup}"] = median / bare
        results.chart.setdefault("throughput, median requests/s", {})[setup] = median


def section_idle(results: Results, seconds: int) -> None:
    """An idle server: how often the kernel wakes its threads, bare and with the middleware."""
    table = results.table(
        f"Idle server (200 modules; thread wake-ups per second over {seconds} s without a request)",
        ["setup", "wake-ups per second", "above the bare app"],
    )
    with app_tree(200) as root:
        rates: dict[str, float] = {}
        for setup, wrapper in (("bare app", "main"), ("enabled middleware", "asgi")):
            server = ours(root, wrapper)
            try:
                time.sleep(1)  # past the start
                before = wake_ups(server_pid(server))
                time.sleep(seconds)
                rates[setup] = (wake_ups(server_pid(server)) - before) / seconds
            finally:
                server.stop()
            table.append([setup, f"{rates[setup]:.1f}", f"{rates[setup] - rates['bare app']:+.1f}"])
    results.values["idle wake-ups"] = rates["enabled middleware"] - rates["bare app"]


def section_memory(results: Results, reloads: int, sizes: list[int]) -> None:
    table = results.table(
        "Memory (reloads of the leaf through POST /__reload)",
        ["modules", "after", "resident MB", "leaked versions"],
    )
    for size in sizes:
        with app_tree(size) as root:
            server = ours(root, RELOAD_MIDDLEWARE_WATCH="0")
            try:
                figures: dict[int, float] = {}
                leaked = 0
                for number in range(1, reloads + 1):
                    _save(root / LEAF, f"MESSAGE = 'mem{number}'\n")
                    answer = server.client.post("/__reload").json()
                    if not answer["ok"] or not answer["reloaded"]:
                        raise RuntimeError(f"reload {number} did not happen: {answer}")
                    if number in (1, reloads):
                        time.sleep(2.5)  # past the retirement's leak check, which collects garbage
                        figures[number] = rss_mb(server_pid(server))
                        leaked = len(server.status()["leaked_versions"])
                        after = f"{number} reload{'s' if number > 1 else ''}"
                        table.append([str(size), after, f"{figures[number]:.1f}", str(leaked)])
                growth = figures[reloads] - figures[1]
                table.append([str(size), "growth", f"{growth:+.1f}", ""])
                results.values[f"memory {size}"] = growth
                results.values[f"leaked {size}"] = leaked
            finally:
                server.stop()


def section_growth(results: Results, sizes: list[int], edits: int, seconds: int) -> None:
    table = results.table(
        "Growth with app size (this package; leaf edits; per-request overhead = 1 - enabled/bare throughput, "
        "best of 4 runs each, in alternating order)",
        ["modules", "edit-to-serve median ms", "reload work ms", "per-request overhead"],
    )
    profiles: dict[str, dict[str, float]] = {}
    for size in sizes:
        with app_tree(size) as root:
            modules = count_modules(root / PACKAGE)
            server = ours(root)
            phases: list[dict[str, float]] = []
            try:
                latencies, _ = edit_to_serve(root, server.client, edits, LEAF, server.status, phases)
                reload_ms = server.status()["last_reload"]["duration_ms"]
            finally:
                server.stop()
            profiles[f"{modules} modules"] = {
                name: statistics.median(p.get(name, 0.0) for p in phases) for name in phases[0]
            }
            profiles[f"{modules} modules"]["total"] = statistics.median(latencies)
            results.values[f"own {size}"] = sum(profiles[f"{modules} modules"].get(n, 0.0) for n in OWN_PHASES)
            throughput: dict[str, list[float]] = {"asgi": [], "main": []}
            for round_number in range(4):
                pairs = list(throughput.items())
                for wrapper, values in pairs if round_number % 2 else pairs[::-1]:  # alternate the order
                    measured = ours(root, wrapper)
                    try:
                        pin(server_pid(measured), SERVER_CPU)
                        wrk(f"{measured.url}/ping", 1)
                        values.append(wrk(f"{measured.url}/ping", seconds))
                    finally:
                        measured.stop()
        median = statistics.median(latencies)
        overhead = 1 - max(throughput["asgi"]) / max(throughput["main"])
        table.append([str(modules), f"{median:.0f}", f"{reload_ms:.1f}", f"{overhead:+.1%}"])
        results.chart.setdefault("edit-to-serve median ms by app size", {})[f"{modules} modules"] = median
    _profile_table(results, "Where a leaf edit's time goes, by app size (median ms of each phase)", profiles)


def section_request_cost(results: Results, sizes: list[int], calls: int) -> None:
    """The middleware's own cost per request, in-process and without a network or a framework in
    the way: a trivial ASGI app called directly, bare and wrapped, with N tracked modules."""
    table = results.table(
        f"Per-request cost of the middleware itself (in-process, trivial ASGI app, {calls} calls, best of 3)",
        ["tracked modules", "bare app us/request", "disabled us/request", "enabled us/request", "overhead us/request"],
    )
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="reload-cost-") as directory:
            bare, disabled, enabled, tracked = asyncio.run(_request_cost(Path(directory), size, calls))
        table.append([str(tracked), f"{bare:.2f}", f"{disabled:.2f}", f"{enabled:.2f}", f"{enabled - bare:+.2f}"])
        results.chart.setdefault("middleware cost per request, us", {})[f"{tracked} tracked"] = enabled - bare
        results.values["disabled cost us"] = disabled - bare


async def _request_cost(root: Path, size: int, calls: int) -> tuple[float, float, float, int]:
    package = f"cost_app_{size}"
    (root / package).mkdir()
    (root / package / "__init__.py").write_text("")
    for index in range(size):
        (root / package / f"m{index}.py").write_text(f"VALUE = {index}\n")
    imports = "".join(f"from {package} import m{index}\n" for index in range(size))
    (root / package / "main.py").write_text(imports + TRIVIAL_APP)
    sys.path.insert(0, str(root))
    try:
        from reload_middleware import ReloadMiddleware

        module = importlib.import_module(f"{package}.main")
        middleware = ReloadMiddleware(f"{package}.main:app", enabled=True, environ={}, watch=False)
        disabled_middleware = ReloadMiddleware(module.app, enabled=False, environ={})
        messages: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        lifespan = asyncio.create_task(
            middleware({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, messages.get, _ignore)
        )
        await messages.put({"type": "lifespan.startup"})
        bare = min([await _time_calls(module.app, calls) for _ in range(3)])
        disabled = min([await _time_calls(disabled_middleware, calls) for _ in range(3)])
        enabled = min([await _time_calls(middleware, calls) for _ in range(3)])
        await messages.put({"type": "lifespan.shutdown"})
        await lifespan
        return bare, disabled, enabled, middleware.status()["tracked_modules"]
    finally:
        sys.path.remove(str(root))


TRIVIAL_APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})
"""


async def _ignore(message: object) -> None:
    pass


async def _time_calls(app: Any, calls: int) -> float:
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    started = time.perf_counter()
    for _ in range(calls):
        scope = {"type": "http", "path": "/", "method": "GET", "headers": [], "query_string": b"", "state": {}}
        await app(scope, receive, _ignore)
    return (time.perf_counter() - started) / calls * 1e6


def section_goals(results: Results) -> None:
    """Issues #15's and #24's goals, each with the figure measured above in this run, met or not."""
    table = results.table("Goals (issues #15 and #24), measured in this run", ["goal", "measured", "met"])
    v = results.values

    def goal(text: str, measured: str, met: bool) -> None:
        table.append([text, measured, "yes" if met else "**no**"])

    leaf, common, uvicorn = v["leaf ours"], v["common ours"], v["leaf uvicorn"]
    goal(
        "leaf edit: at most half of uvicorn-hmr's median",
        f"{leaf:.0f} ms against {HMR_CITED['leaf']:.0f} ms cited for uvicorn-hmr (half: {HMR_CITED['leaf'] / 2:.0f})",
        leaf <= HMR_CITED["leaf"] / 2,
    )
    goal(
        "leaf edit: at least 25x faster than uvicorn --reload",
        f"{uvicorn:.0f} / {leaf:.0f} ms = {uvicorn / leaf:.1f}x",
        uvicorn / leaf >= 25,
    )
    goal(
        "module imported by most of the app: no slower than uvicorn-hmr, fresh-process semantics kept",
        f"{common:.0f} ms against {HMR_CITED['common']:.0f} ms cited for uvicorn-hmr",
        common <= HMR_CITED["common"],
    )
    for size, limit in ((200, 10.0), (800, 25.0)):
        own = v[f"own {size}"] if f"own {size}" in v else v["leaf own"]
        goal(
            f"our own work ({' + '.join(OWN_PHASES)}) at {size} modules: at most {limit:.0f} ms",
            f"{own:.1f} ms (leaf edit)",
            own <= limit,
        )
    goal(
        "ORM model edit reloads (its own row above)",
        f"{v['orm ours']:.0f} ms (uvicorn --reload: {v['orm uvicorn']:.0f} ms)",
        True,
    )
    enabled, disabled = v["throughput enabled middleware"], v["throughput disabled middleware"]
    goal("throughput enabled: at least 0.98 of the bare app", f"{enabled:.3f}", enabled >= 0.98)
    goal(
        "throughput disabled: 1.00 of the bare app",
        f"{disabled:.3f} (in-process: {v['disabled cost us']:+.2f} us a request)",
        disabled >= 0.995,
    )
    if "leaf before" in v:
        now, before = v["leaf now"], v["leaf before"]
        goal(
            "leaf edit with run-time detection of old code (#24): within 10 % of main before it, side by side",
            f"{now:.1f} ms against {before:.1f} ms: {now / before:.2f}x",
            now <= before * 1.1,
        )
    goal(
        "run-time detection's own cost (#24), after the swap: at most 5 ms a leaf edit",
        f"{v['leaf old_code']:.2f} ms (phase old_code; module imported by many: {v['common old_code']:.2f} ms)",
        v["leaf old_code"] <= 5,
    )
    wakes = v["idle wake-ups"]
    goal("an idle enabled server: no periodic wake-ups beyond the bare app's", f"{wakes:+.1f} a second", wakes < 1)
    for size in (200, 800):
        if f"memory {size}" in v:
            growth, leaked = v[f"memory {size}"], v[f"leaked {size}"]
            goal(
                f"memory at {size} modules: within 10 MB after 200 reloads, 0 leaked",
                f"{growth:+.1f} MB, {leaked:.0f} leaked",
                growth <= 10 and leaked == 0,
            )


# -- output ----------------------------------------------------------------------------------------


def machine() -> str:
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("reload_middleware", "uvicorn", "starlette", "fastapi", "watchfiles", "numpy", "sqlalchemy")
    )
    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next((line.split(":")[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    return f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python {platform.python_version()}; {versions}"


def write_markdown(results: Results, path: Path, seconds: float) -> None:
    lines = ["# Benchmark results", "", f"Measured by `make bench` in {seconds:.0f} s on {machine()}.", ""]
    goals = [name for name in results.rows if name.startswith("Goals")]
    for name in [*goals, *(name for name in results.rows if name not in goals)]:
        rows = results.rows[name]
        lines += [f"## {name}", "", "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
        lines.append("")
    lines += [f"- {note}" for note in results.notes]
    path.write_text("\n".join(lines) + "\n")


def write_chart(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(results.chart.items())
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2))
    for axis, (title, values) in zip(axes if len(panels) > 1 else [axes], panels, strict=True):
        labels = list(values)
        axis.bar(range(len(labels)), list(values.values()), color="#1f6feb")
        axis.set_xticks(range(len(labels)), [label.replace(": ", ":\n") for label in labels], fontsize=8)
        axis.set_title(title, fontsize=10)
        if "(log)" in title:
            axis.set_yscale("log")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description="reload_middleware benchmarks")
    parser.add_argument("--quick", action="store_true", help="fewer edits and shorter runs, to try the script")
    options = parser.parse_args()
    # The servers' local credential (which admin requests carry) in a private directory of this run.
    os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="reload-bench-run-")
    # Servers run as people run them: writing bytecode caches (a shell may turn that off).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: `make bench` installs Debian's wrk")
    edits, seconds = (3, 2) if options.quick else (10, 4)
    started = time.monotonic()
    results = Results()
    sections: list[tuple[str, Callable[[], None]]] = [
        ("edit-to-serve", lambda: section_edit_to_serve(results, edits)),
        ("before #24", lambda: section_before(results, edits, 2 if options.quick else 4)),
        ("repaint", lambda: section_repaint(results, edits)),
        ("failures", lambda: section_failures(results, 10)),
        ("throughput", lambda: section_throughput(results, seconds, 3 if options.quick else 7)),
        ("idle", lambda: section_idle(results, 2 if options.quick else 5)),
        ("memory", lambda: section_memory(results, 20 if options.quick else 200, [200, 800])),
        ("growth", lambda: section_growth(results, [50, 200, 800], max(3, edits // 2), 3)),
        ("request cost", lambda: section_request_cost(results, [50, 200, 800], 20_000 if options.quick else 100_000)),
        ("goals", lambda: section_goals(results)),
    ]
    for title, run in sections:
        print(f"== {title}", flush=True)
        run()
        print("\n".join(" | ".join(row) for row in list(results.rows.values())[-1]), flush=True)
    write_markdown(results, HERE / "results.md", time.monotonic() - started)
    write_chart(results, HERE / "results.png")
    print(f"wrote {HERE / 'results.md'} and {HERE / 'results.png'} in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()

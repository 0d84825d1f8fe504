"""Edit-to-serve and request overhead of reload_middleware on a small Starlette app.

Writes an app into a temporary directory, serves it with a real uvicorn process on 127.0.0.1,
then saves a leaf module N times and measures, for each save, the time from the write to the
first response that carries the new value (a client polling every millisecond), plus whether a
single request sent 100 ms after the save already sees it.

Usage: python benchmarks/edit_to_serve.py [--edits 20] [--modules 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import AppTree, Server


def write_app(tree: AppTree, modules: int) -> None:
    tree.write("__init__.py", "")
    tree.write("leaf.py", "VALUE = 0\n")
    for index in range(modules):
        tree.write(f"m{index}.py", f"from PKG.leaf import VALUE\nCONSTANT_{index} = VALUE + {index}\n")
    imports = "\n".join(f"from PKG import m{index}" for index in range(modules))
    tree.write(
        "main.py",
        imports
        + """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from PKG import leaf


async def home(request):
    return PlainTextResponse(str(leaf.VALUE))


app = Starlette(routes=[Route("/", home)])
""",
    )
    tree.write("asgi.py", "from reload_middleware import ReloadMiddleware\n\napp = ReloadMiddleware('PKG.main:app')\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--modules", type=int, default=50, help="modules that import the edited leaf")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        tree = AppTree(Path(directory))
        write_app(tree, args.modules)
        env = {"RELOAD_MIDDLEWARE": "1", "PYTHONPATH": directory, "PATH": "/usr/bin:/bin"}
        server = Server(f"{tree.name}.asgi:app", Path(directory), env, ["log_level=warning"])
        try:
            server.wait_ready()
            deadline = time.monotonic() + 10
            while not server.status()["watching"] and time.monotonic() < deadline:
                time.sleep(0.01)
            latencies: list[float] = []
            seen_after_100ms = 0
            for value in range(1, args.edits + 1):
                time.sleep(0.2)  # a pause between saves, like a person's
                written = time.perf_counter()
                tree.write("leaf.py", f"VALUE = {value}\n")
                while server.client.get("/").text != str(value):
                    if time.perf_counter() - written > 10:
                        raise SystemExit(f"edit {value} was not served within 10 s")
                    time.sleep(0.001)
                latencies.append((time.perf_counter() - written) * 1000)
                # The script case: one request, 100 ms after the save.
                time.sleep(0.2)
                written = time.perf_counter()
                tree.write("leaf.py", f"VALUE = {-value}\n")
                time.sleep(max(0.0, 0.1 - (time.perf_counter() - written)))
                seen_after_100ms += server.client.get("/").text == str(-value)
            reload_ms = server.status()["last_reload"]["duration_ms"]
        finally:
            server.stop()

    quantiles = statistics.quantiles(latencies, n=10)
    print(f"edit-to-serve over {args.edits} saves of a leaf imported by {args.modules} modules:")
    print(f"  median {statistics.median(latencies):.1f} ms, p90 {quantiles[-1]:.1f} ms, max {max(latencies):.1f} ms")
    print(f"  last reload's own work: {reload_ms:.1f} ms")
    print(f"  a single request 100 ms after the save saw the edit: {seen_after_100ms}/{args.edits}")


if __name__ == "__main__":
    main()

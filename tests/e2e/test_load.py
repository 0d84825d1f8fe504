"""A bounded load test: 20 concurrent clients against a real uvicorn server during 10 reloads."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from apps import LIFECYCLE_APP, write_app
from harness import AppTree, ServerFactory, wait_until

CLIENTS = 20
MAX_REQUESTS_PER_CLIENT = 2_000  # with the stop event and the join timeout, bounds the loop
LOADED = 30.0  # seconds a wait may take while 20 clients keep both cores busy
BROKEN_SYNTAX = 'VALUE = "broken"\ndef oops(:\n'


def test_no_request_fails_or_sees_a_mix_of_versions_during_reloads(tree: AppTree, serve: ServerFactory) -> None:
    events = tree.root / "lifecycle.log"
    write_app(tree, LIFECYCLE_APP)
    server = serve(env={"LIFECYCLE_LOG": str(events)})
    wait_until(lambda: server.status()["watching"])

    stop = threading.Event()
    results: list[list[tuple[int, str]]] = [[] for _ in range(CLIENTS)]
    failures: list[str] = []

    def client(index: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for _ in range(MAX_REQUESTS_PER_CLIENT):
                if stop.is_set():
                    return
                try:
                    response = http.get("/")
                except httpx.HTTPError as exc:
                    failures.append(f"client {index}: {exc!r}")
                    continue
                if response.status_code != 200:
                    failures.append(f"client {index}: {response.status_code} {response.text[:200]}")
                    continue
                results[index].append((int(response.headers["x-reload-version"]), response.text))

    threads = [threading.Thread(target=client, args=(index,)) for index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        # Every client is served by version 1 before the first edit, however loaded the machine.
        wait_until(lambda: all(results), LOADED)
        _reload_ten_times(tree, server.client)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    server.stop()

    assert failures == []
    served = [item for per_client in results for item in per_client]
    assert len(served) >= CLIENTS * 10, len(served)
    # Each response comes from exactly one version: its value and its lifespan state agree, and
    # every version number always carries the same value.
    assert all(text.split()[0] == text.split()[1] for _, text in served)
    by_version = {version: {text for v, text in served if v == version} for version, _ in served}
    assert all(len(texts) == 1 for texts in by_version.values()), by_version
    print(f"{len(served)} responses from {len(by_version)} versions")
    for per_client in results:
        versions = [version for version, _ in per_client]
        assert versions == sorted(versions), "a client saw versions go backwards"
    # 10 edits: 8 good ones became versions 2 to 9, one failed to import, one failed its lifespan
    # startup. Every version that started was shut down exactly once.
    assert {version: texts.pop() for version, texts in by_version.items()} == {n: f"v{n} v{n}" for n in range(1, 10)}
    log = Path(events).read_text().splitlines()
    starts = Counter(line.split()[1] for line in log if line.startswith("start"))
    stops = Counter(line.split()[1] for line in log if line.startswith("stop"))
    assert starts == stops == Counter({f"v{n}": 1 for n in range(1, 10)})


def server_serves(client: httpx.Client, value: str) -> bool:
    return client.get("/").text == f"{value} {value}"


def _reload_ten_times(tree: AppTree, admin: httpx.Client) -> None:
    """Edit the leaf 10 times while the clients run; the 4th edit breaks the syntax, the 7th the
    lifespan startup, and the edit after each repairs it."""
    value = 1
    for step in range(10):
        time.sleep(0.3)  # the clients run for about 4 s in all
        if step in (3, 6):
            failures = admin.get("/__reload").json()["failures"]
            tree.write("leaf.py", BROKEN_SYNTAX if step == 3 else 'VALUE = "fail-startup"\n')
            wait_until(lambda: admin.get("/__reload").json()["failures"] == failures + 1, LOADED)  # noqa: B023
            continue
        value += 1
        tree.write("leaf.py", f'VALUE = "v{value}"\n')
        wait_until(lambda: server_serves(admin, f"v{value}"), LOADED)  # noqa: B023

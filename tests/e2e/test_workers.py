"""Several worker processes (`uvicorn --workers 2`): every worker picks up an edit, and a POST to
whichever worker answers makes every worker reload."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

from apps import STARLETTE_APP, write_app
from harness import AppTree, Server, ServerFactory, http_client, wait_until

WORKERS = 2


def each_worker(server: Server, path: str, deadline: float = 20.0) -> dict[int, Any]:
    """Ask with fresh connections until every worker has answered; worker pid -> answer."""
    answers: dict[int, Any] = {}
    stop = time.monotonic() + deadline
    while len(answers) < WORKERS:
        assert time.monotonic() < stop, f"only workers {sorted(answers)} answered"
        with http_client(server.url) as fresh:
            pid = fresh.get("/process").json()["pid"]
            answers.setdefault(pid, fresh.get(path, headers={"connection": "close"}))
    return answers


def all_listening(server: Server) -> bool:
    statuses = each_worker(server, "/__reload")
    return all(response.json()["process"]["listening"] for response in statuses.values())


def test_a_post_to_one_worker_reloads_every_worker(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"}, options=[f"workers={WORKERS}"])
    wait_until(lambda: all_listening(server), timeout=20)
    assert {response.text for response in each_worker(server, "/").values()} == {"one"}

    tree.write("leaf.py", 'VALUE = "two"\n')
    answer = server.client.post("/__reload").json()
    assert answer["ok"] is True
    wait_until(lambda: {r.text for r in each_worker(server, "/").values()} == {"two"}, timeout=20)
    versions = {pid: r.headers["x-reload-version"] for pid, r in each_worker(server, "/").items()}
    assert set(versions.values()) == {"2"}, versions

    forced = server.client.post("/__reload?force=1").json()
    assert forced["ok"] is True
    wait_until(lambda: {r.headers["x-reload-version"] for r in each_worker(server, "/").values()} == {"3"})


def test_gunicorn_with_uvicorn_workers_reloads_every_worker_on_one_post(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    gunicorn = [str(Path(sys.executable).parent / "gunicorn"), "--bind", "fd://{fd}", "--workers", str(WORKERS)]
    gunicorn += ["--worker-class", "uvicorn.workers.UvicornWorker", "--graceful-timeout", "5"]
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"}, command=gunicorn)
    wait_until(lambda: all_listening(server), timeout=20)
    tree.write("leaf.py", 'VALUE = "two"\n')
    assert server.client.post("/__reload").json()["ok"] is True
    wait_until(lambda: {r.text for r in each_worker(server, "/").values()} == {"two"}, timeout=20)


def test_every_worker_picks_up_an_edit(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(options=[f"workers={WORKERS}"])
    wait_until(lambda: all(r.json()["watching"] for r in each_worker(server, "/__reload").values()), timeout=20)
    tree.write("leaf.py", 'VALUE = "two"\n')
    wait_until(lambda: {r.text for r in each_worker(server, "/").values()} == {"two"}, timeout=20)


def test_the_shared_trigger_lives_in_a_private_directory(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    server.client.post("/__reload")
    trigger = server.status()["process"]["shared_trigger"]
    directory = os.path.dirname(trigger)
    assert stat.S_IMODE(os.lstat(directory).st_mode) == 0o700
    assert os.lstat(directory).st_uid == os.getuid()
    assert stat.S_IMODE(os.lstat(trigger).st_mode) == 0o600


def test_a_worker_never_takes_its_own_trigger_for_another_workers(tree: AppTree, serve: ServerFactory) -> None:
    # Back-to-back POSTs: the watcher may read a trigger this process wrote a moment before it
    # wrote the next one; taking it as another worker's ran a reload of its own, which took the
    # next save, and the POST for that save then found nothing changed.
    write_app(tree, STARLETTE_APP)
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    for number in range(2, 102):
        tree.write("leaf.py", f'VALUE = "v{number}"\n')
        answer = server.client.post("/__reload").json()
        assert (answer["version"], answer["reloaded"] != []) == (number, True)
    assert "another worker asked for a reload" not in server.log()

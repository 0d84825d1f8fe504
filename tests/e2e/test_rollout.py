"""A rolling in-place reload across replicas with ``trigger``: real servers on 127.0.0.1 (and ::1),
one batch at a time, each checked, stopping at the first failure."""

from __future__ import annotations

import json
import socket

import pytest
from apps import STARLETTE_APP, write_app
from harness import AppTree, Server, ServerFactory
from test_cli import free_port, run_cli

TOKEN = "fleet-token"
# Every replica serves the same sources (one release on disk) and reloads only when asked.
REPLICA_ENV = {"RELOAD_MIDDLEWARE_WATCH": "0", "RELOAD_MIDDLEWARE_TOKEN": TOKEN}


def fleet(tree: AppTree, serve: ServerFactory, count: int) -> list[Server]:
    write_app(tree, STARLETTE_APP)
    return [serve(env=REPLICA_ENV, ready_path="/") for _ in range(count)]


def serving(server: Server) -> tuple[str, str]:
    response = server.anonymous.get("/")
    return response.text, response.headers["x-reload-version"]


def test_a_good_edit_rolls_through_every_replica_each_checked(tree: AppTree, serve: ServerFactory) -> None:
    servers = fleet(tree, serve, 3)
    tree.write("leaf.py", 'VALUE = "two"\n')
    result = run_cli(tree, "trigger", *(s.url for s in servers), "--check", "/", "--token", TOKEN)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for server, line in zip(servers, lines, strict=False):
        assert line.startswith(f"{server.url}  v1 -> v2  reloaded  ")
        assert "now version 2" in line
    assert lines[-1] == "3 of 3 replica(s) reloaded"
    assert [serving(server) for server in servers] == [("two", "2")] * 3
    assert TOKEN not in result.stdout + result.stderr  # never printed

    as_json = run_cli(tree, "trigger", *(s.url for s in servers), "--json", "--token", TOKEN)
    answer = json.loads(as_json.stdout)
    assert as_json.returncode == answer["exit_code"] == 0
    assert [(r["replica"], r["outcome"], r["version_before"], r["version_after"]) for r in answer["replicas"]] == [
        (server.url, "unchanged", 2, 2) for server in servers
    ]


def test_a_broken_edit_stops_at_the_first_replica_and_the_others_keep_their_version(
    tree: AppTree, serve: ServerFactory
) -> None:
    servers = fleet(tree, serve, 3)
    tree.write("leaf.py", "VALUE = (\n")
    result = run_cli(tree, "trigger", *(s.url for s in servers), "--json", "--token", TOKEN)
    assert result.returncode == 1
    outcomes = [replica["outcome"] for replica in json.loads(result.stdout)["replicas"]]
    assert outcomes == ["failed", "skipped", "skipped"]
    assert "SyntaxError" in json.loads(result.stdout)["replicas"][0]["message"]
    assert [serving(server) for server in servers] == [("one", "1")] * 3
    # Asked again with a tolerance: every replica is tried, each fails the same way.
    tolerant = run_cli(tree, "trigger", *(s.url for s in servers), "--max-failures", "3", "--token", TOKEN)
    assert tolerant.returncode == 1
    assert tolerant.stdout.count("  failed  ") == 3
    assert tolerant.stdout.splitlines()[-1] == "0 of 3 replica(s) reloaded; the roll-out stopped"


def test_a_failing_check_stops_the_roll_out(tree: AppTree, serve: ServerFactory) -> None:
    servers = fleet(tree, serve, 2)
    tree.write("leaf.py", 'VALUE = "two"\n')
    result = run_cli(tree, "trigger", *(s.url for s in servers), "--check", "/missing", "--json", "--token", TOKEN)
    assert result.returncode == 1
    first, second = json.loads(result.stdout)["replicas"]
    assert (first["outcome"], second["outcome"]) == ("check failed", "skipped")
    assert "answered 404 from version 2" in first["message"]
    assert serving(servers[1]) == ("one", "1")


def test_a_refused_and_an_unreachable_replica_exit_2(tree: AppTree, serve: ServerFactory) -> None:
    servers = fleet(tree, serve, 1)
    other = serve(env={**REPLICA_ENV, "RELOAD_MIDDLEWARE_TOKEN": "another-token"}, ready_path="/")
    nobody = f"http://127.0.0.1:{free_port()}"
    tree.write("leaf.py", 'VALUE = "two"\n')
    refused = run_cli(tree, "trigger", other.url, servers[0].url, "--json", "--token", TOKEN)
    assert refused.returncode == 2
    outcomes = [(r["outcome"], r["message"][:13]) for r in json.loads(refused.stdout)["replicas"]]
    assert outcomes == [("refused", "refused (401)"), ("skipped", "")]
    unreachable = run_cli(tree, "trigger", nobody, servers[0].url, "--max-failures", "1", "--token", TOKEN)
    assert unreachable.returncode == 2
    assert f"{nobody}  v? -> v?  unreachable" in unreachable.stdout
    assert serving(servers[0]) == ("two", "2")  # tolerated: the roll-out went on
    single = run_cli(tree, "trigger", nobody, "--token", TOKEN)  # one server: as a person reads it
    assert single.returncode == 2
    assert "could not reach" in single.stderr


def _loopback_name() -> tuple[str, list[str]]:
    """A name for the loopback addresses: one that resolves to both 127.0.0.1 and ::1 where this
    machine has one, else ``localhost`` with what it resolves to."""
    for name in ("localhost", "localhost6", "ip6-localhost", "localhost.localdomain"):
        try:
            found = {str(info[4][0]) for info in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
        except socket.gaierror:
            continue
        if {"127.0.0.1", "::1"} <= found:
            return name, ["127.0.0.1", "::1"]
    found = {str(info[4][0]) for info in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)}
    return "localhost", sorted(found & {"127.0.0.1", "::1"})


@pytest.mark.skipif(not socket.has_ipv6, reason="the machine has no IPv6 at all")
def test_all_addresses_of_a_name_are_the_replicas(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    first = serve(env=REPLICA_ENV, ready_path="/")
    second = serve(env=REPLICA_ENV, ready_path="/", bind=("::1", first.port))  # same port, other address
    name, addresses = _loopback_name()
    tree.write("leaf.py", 'VALUE = "two"\n')
    result = run_cli(tree, "trigger", "--all-addresses", f"http://{name}:{first.port}", "--json", "--token", TOKEN)
    assert result.returncode == 0, result.stdout + result.stderr
    replicas = json.loads(result.stdout)["replicas"]
    shown = [f"[{address}]" if ":" in address else address for address in addresses]
    assert [replica["replica"] for replica in replicas] == [f"http://{a}:{first.port}" for a in shown]
    assert all(replica["outcome"] == "reloaded" for replica in replicas)
    by_address = {"127.0.0.1": first, "::1": second}
    for address in addresses:
        assert serving(by_address[address]) == ("two", "2")
    for address in {"127.0.0.1", "::1"} - set(addresses):
        assert serving(by_address[address]) == ("one", "1")  # not one of the name's addresses

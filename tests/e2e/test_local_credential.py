"""The local credential never leaves this user's processes: ``trigger`` makes the server prove it
holds the credential before it authorises anything, so another local OS user listening on the
port (made by the test: root here and in CI) receives nothing it could use; and a credential file
removed under running servers (a ``/tmp`` cleaner) is published again, so ``trigger`` keeps
working."""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from apps import STARLETTE_APP, write_app
from harness import AppTree, ServerFactory, local_credential_of, wait_until
from playwright.sync_api import Browser
from test_browser import browser  # noqa: F401  (the Chromium fixture)
from test_cli import CliServer, cli  # noqa: F401  (the command line's servers)

from reload_middleware._local import credential_path, local_credential

OTHER_PYTHON = "/usr/bin/python3"  # the system's: another user cannot run ours, under /root

# Another user's server on the port: it records what it receives and answers as an admin endpoint
# would, with a made-up proof.
LISTENER = r"""
import socket
import sys

host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
family = socket.AF_INET6 if ":" in host else socket.AF_INET
listener = socket.create_server((host, int(sys.argv[1])), family=family)
with open(sys.argv[2], "ab", buffering=0) as record:
    print("listening", flush=True)
    while True:
        client, _ = listener.accept()
        with client:
            client.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = client.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            record.write(data)
            body = b'{"nonce": "guessed", "proof": "forged", "ok": true, "version": 1, "reloaded": []}'
            head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            client.sendall(head.encode() + b"connection: close\r\n\r\n" + body)
"""


@pytest.fixture
def other_user() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("making another local OS user needs root (as in CI)")
    if shutil.which("useradd") is None or not os.path.exists(OTHER_PYTHON):
        pytest.skip("useradd and the system's python3 are needed to run a process as another user")
    name = f"rm-other-{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def trigger(*arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("RELOAD_MIDDLEWARE")}
    return subprocess.run(
        [sys.executable, "-m", "reload_middleware", "trigger", *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@contextlib.contextmanager
def listening_as(user: str, port: int, host: str = "127.0.0.1") -> Iterator[Path]:
    """The other user's listener on ``host``:``port``; yields the file of what it receives."""
    shared = Path(tempfile.mkdtemp(prefix="rm-other-"))
    shared.chmod(0o777)
    (shared / "listener.py").write_text(LISTENER)
    received = shared / "received"
    listener = subprocess.Popen(
        [OTHER_PYTHON, str(shared / "listener.py"), str(port), str(received), host],
        user=user,
        cwd=shared,
        stdout=subprocess.PIPE,
    )
    try:
        assert listener.stdout is not None
        assert listener.stdout.readline() == b"listening\n"
        assert os.stat(received).st_uid == pwd.getpwnam(user).pw_uid  # it is the other user's
        yield received
    finally:
        listener.kill()
        listener.wait()
        if listener.stdout is not None:
            listener.stdout.close()
        shutil.rmtree(shared)


def test_another_users_listener_on_the_port_receives_nothing_it_could_use(other_user: str) -> None:
    credential = local_credential()  # this user's, in this test's private directory
    assert credential is not None
    port = free_port()
    with listening_as(other_user, port) as received:
        result = trigger(f"http://127.0.0.1:{port}")
        assert result.returncode == 2
        assert "did not prove it holds this user's local credential" in result.stderr
        seen = received.read_bytes()
        assert b"GET /__reload?challenge=" in seen  # asked to prove it first ...
        assert credential.encode() not in seen  # ... and sent nothing secret when it could not
        assert b"reload-proof" not in seen.lower()
        assert b"POST" not in seen


def test_the_logged_link_never_leads_a_browser_to_another_users_listener(
    tree: AppTree,
    other_user: str,
    cli: Callable[..., CliServer],  # noqa: F811
    browser: Browser,  # noqa: F811
) -> None:
    # `localhost` may resolve to ::1 first (Chromium tries it first): another user listens there,
    # on the port our server serves on 127.0.0.1.
    write_app(tree, STARLETTE_APP)
    server = cli(f"{tree.name}.main:app", "--host", "localhost")
    with listening_as(other_user, server.port, host="::1") as received:
        link = next(line for line in server.log().splitlines() if "Reload status page:" in line).split()[-1]
        assert link.startswith(f"http://127.0.0.1:{server.port}/__reload#token=")
        context = browser.new_context()
        try:
            view = context.new_page()
            view.goto(link)
            view.wait_for_selector("text=Reload now")
        finally:
            context.close()
        assert received.read_bytes() == b""  # not even a connection's request


def test_trigger_keeps_working_after_the_credential_file_was_removed(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    credential_path().unlink()  # a /tmp cleaner, a logout
    tree.write("leaf.py", 'VALUE = "two"\n')
    result = trigger(server.url)
    assert result.returncode == 0, result.stderr
    assert "now version 2" in result.stdout
    wait_until(lambda: server.anonymous.get("/").text == "two")
    assert credential_path().exists()  # published again by the server


def test_a_browser_holding_the_credential_sends_it_to_no_other_users_server_on_the_host(
    tree: AppTree,
    other_user: str,
    serve: ServerFactory,
    browser: Browser,  # noqa: F811
) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    credential = local_credential_of(os.environ)
    assert credential is not None
    context = browser.new_context()
    try:
        view = context.new_page()
        view.goto(f"{server.url}/__reload#token={credential}")
        view.wait_for_selector("text=Reload now")  # the developer's browser holds the credential
        port = free_port()
        with listening_as(other_user, port) as received:
            view.goto(f"http://127.0.0.1:{port}/")  # a typed URL, a link, an <img>: all the same here
            wait_until(lambda: received.read_bytes())
            assert credential.encode() not in received.read_bytes()
    finally:
        context.close()

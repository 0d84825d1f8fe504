"""A loopback address is not a credential: through a proxy on the same machine (a byte-for-byte
TCP forwarder, as nginx's default proxy_pass, socat or ssh -R), a stranger must not reload, nor
read error details; the developer's own tools still work with no configuration."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx
import pytest
from apps import FLASK_APP, STARLETTE_APP, write_app
from harness import AppTree, Server, ServerFactory, http_client, wait_until
from test_wsgi import GUNICORN

SECRET_LINE = 'API_KEY = "sk_live_hunter2"; VALUE = API_KEY + undefined_name\n'


class Forwarder:
    """Accepts on 127.0.0.1 and copies bytes both ways to the server: no header is added."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self._target), timeout=10)
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pipe, args=(source, sink), daemon=True)
                self._threads.append(thread)
                thread.start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            sock.close()
        for thread in self._threads:
            thread.join(5)


@pytest.fixture
def forwarded(tree: AppTree, serve: ServerFactory) -> Iterator[tuple[Server, httpx.Client]]:
    """A server with default options (no token, error page on as under the command line), and a
    client that reaches it only through the forwarder, as a remote stranger would."""
    write_app(tree, STARLETTE_APP)
    server = serve(env={"RELOAD_MIDDLEWARE_ERROR_PAGE": "1"})
    wait_until(lambda: server.status()["watching"])
    forwarder = Forwarder(server.port)
    with http_client(forwarder.url) as stranger:
        yield server, stranger
    forwarder.close()


def test_through_a_proxy_no_reload_without_a_credential(tree: AppTree, forwarded: tuple[Server, httpx.Client]) -> None:
    server, stranger = forwarded
    assert [stranger.post("/__reload").status_code, stranger.post("/__reload?force=1").status_code] == [401, 401]
    assert server.status()["version"] == 1
    assert server.status()["reloads"] == 0


def test_through_a_proxy_no_error_details_nor_secrets(tree: AppTree, forwarded: tuple[Server, httpx.Client]) -> None:
    server, stranger = forwarded
    tree.write("leaf.py", SECRET_LINE)
    wait_until(lambda: server.status()["failures"] == 1)
    assert server.status()["last_error"]["file"] == str(tree.path("leaf.py"))  # the developer sees it
    for response in (
        stranger.get("/__reload"),
        stranger.get("/__reload", headers={"accept": "text/html"}),
        stranger.get("/", headers={"accept": "text/html"}),
        stranger.get("/"),
    ):
        shown = response.text + str(response.headers)
        assert "sk_live_hunter2" not in shown
        assert "undefined_name" not in shown
        assert str(tree.path("leaf.py")) not in shown
        assert "Traceback" not in shown
    page = stranger.get("/", headers={"accept": "text/html"})
    assert (page.status_code, "Reload failed: NameError" in page.text) == (500, True)
    assert stranger.get("/").text == "one"  # API clients: the old version
    # The developer's browser, holding the credential (per origin), asks the admin endpoint for
    # the error page the app's page pointed it to, and sees it all.
    assert "data-details='/__reload?page=error'" in page.text
    mine = server.client.get("/__reload?page=error", headers={"accept": "text/html"})
    assert "sk_live_hunter2" in mine.text  # the failing line, shown to its author
    cookie = {"cookie": f"reload_middleware_credential={server.client.headers['authorization'][7:]}"}
    assert "sk_live_hunter2" not in server.anonymous.get("/", headers={"accept": "text/html", **cookie}).text


def test_trigger_finds_the_local_credential_by_itself(tree: AppTree, forwarded: tuple[Server, httpx.Client]) -> None:
    server, _ = forwarded
    tree.write("leaf.py", 'VALUE = "two"\n')
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RELOAD_MIDDLEWARE")}
    done = subprocess.run(
        [sys.executable, "-m", "reload_middleware", "trigger", server.url],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )
    assert done.returncode == 0, done.stderr
    assert server.anonymous.get("/").text == "two"


def raw_request(port: int, request: bytes) -> bytes:
    """Send bytes as they are; the whole answer (the request asks the server to close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("host", [b"127.0.0.1:8000, evil.com", b"[::1]:80:evil", b"127.0.0.1 evil.com"])
def test_a_host_header_is_one_host_and_an_optional_port(tree: AppTree, serve: ServerFactory, host: bytes) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve()
    answer = raw_request(server.port, b"GET /__reload HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]


def test_an_absolute_form_target_must_match_the_host_under_gunicorn(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, FLASK_APP)
    server = serve("PKG.wsgi:app", command=GUNICORN)
    request = b"GET http://evil.com/__reload HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    assert raw_request(server.port, request).startswith(b"HTTP/1.1 400")
    same = f"GET http://127.0.0.1:{server.port}/__reload HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
    assert raw_request(server.port, same.encode() + b"Connection: close\r\n\r\n").startswith(b"HTTP/1.1 200")


def test_a_non_ascii_token_matches_as_utf8_bytes(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(env={"RELOAD_MIDDLEWARE_TOKEN": "clé-secrète"})
    request = "POST /__reload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n"
    answer = raw_request(server.port, request.encode() + "Authorization: Bearer clé-secrète\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]


def test_a_token_with_surrounding_white_space_is_refused_at_start(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    with pytest.raises(AssertionError, match="RELOAD_MIDDLEWARE_TOKEN must not start or end with white space"):
        serve(env={"RELOAD_MIDDLEWARE_TOKEN": "s3cret "})


def test_a_dual_stack_listener_sees_a_local_ipv4_client_as_loopback(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(dual_stack=True)
    assert server.anonymous.get("/__reload").status_code == 200  # from ::ffff:127.0.0.1


def test_a_control_character_in_an_error_never_breaks_a_response_under_gunicorn(
    tree: AppTree, serve: ServerFactory
) -> None:
    write_app(tree, FLASK_APP)
    server = serve("PKG.wsgi:app", env={"RELOAD_MIDDLEWARE_ERROR_PAGE": "1"}, command=GUNICORN)
    wait_until(lambda: server.status()["watching"])
    tree.write("leaf.py", 'raise RuntimeError("\\x1b[31mcoloured\\x1b[0m\\r\\nX-Injected: 1")\n')
    wait_until(lambda: server.status()["failures"] == 1)
    for client in (server.client, server.anonymous):
        response = client.get("/")
        assert (response.status_code, response.text) == (200, "one")
        assert "x-injected" not in response.headers
        assert response.headers["x-reload-error"].startswith("RuntimeError")
        assert "\x1b" not in response.headers["x-reload-error"]

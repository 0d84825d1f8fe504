"""Test and benchmark harness: app trees under unique package names, and real uvicorn processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

SERVE = Path(__file__).with_name("serve.py")


class AppTree:
    """A package written into a temporary directory, with a name no other test uses."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = f"app_{uuid.uuid4().hex[:10]}"
        (root / self.name).mkdir(parents=True)

    def write(self, relative: str, source: str) -> Path:
        """Write ``source`` (dedented; ``PKG`` stands for the package name) to ``relative``."""
        path = self.root / self.name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        # Saved the way most editors save: a complete new file renamed over the old one, so that
        # the watcher never sees a half-written module.
        temporary = path.with_name(f".{path.name}.saving")
        temporary.write_text(textwrap.dedent(source).replace("PKG", self.name))
        os.replace(temporary, path)
        return path

    def path(self, relative: str) -> Path:
        return self.root / self.name / relative


def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.02,
    explain: Callable[[], object] | None = None,
) -> Any:
    """Poll until ``predicate`` returns something truthy; fail after ``timeout`` seconds, with what
    ``explain`` says then (the status, say) in the message."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            why = f"; {explain()}" if explain else ""
            raise AssertionError(f"condition not met within {timeout} s: {predicate}{why}")
        time.sleep(interval)


def http_client(base_url: str, timeout: float = 10.0) -> httpx.Client:
    """An httpx client that never reuses a connection the server may be closing.

    A server closes a connection idle for its keep-alive time (gunicorn: 2 s, uvicorn and
    hypercorn: 5 s); a request sent on it just then is reset. Tests idle longer than that (a fresh
    process run to compare with), so the client lets idle connections go after 1 s itself."""
    return httpx.Client(base_url=base_url, timeout=timeout, limits=httpx.Limits(keepalive_expiry=1.0))


class Server:
    """A real uvicorn process on 127.0.0.1 with an ephemeral port, talked to with httpx."""

    def __init__(
        self,
        import_string: str,
        cwd: Path,
        env: dict[str, str],
        options: list[str],
        command: list[str] | None = None,
        dual_stack: bool = False,
        bind: tuple[str, int] | None = None,
    ) -> None:
        # Dual stack (`--host ::`): IPv4 clients reach it as ::ffff:127.0.0.1. ``bind``: an address
        # and port of its own (a replica on ::1 beside one on 127.0.0.1, on the same port).
        host, port = bind or ("::" if dual_stack else "127.0.0.1", 0)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            self._sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual_stack else 1)
        self._sock.bind((host, port))
        self._sock.listen(128)
        self.port = self._sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host and not dual_stack else "127.0.0.1"
        self.url = f"http://{shown}:{self.port}"
        self.log_path = cwd / f"server-{self.port}.log"
        self._log = self.log_path.open("wb")
        fd = self._sock.fileno()
        # Another server (gunicorn, hypercorn) can take the command line; "{fd}" stands for the
        # socket. A server that cannot take one (granian) binds "{port}" itself: the socket is
        # closed first, and the port is free for it, if for a moment anyone's.
        argv = [sys.executable, str(SERVE), str(fd), import_string, *options]
        if command is not None:
            argv = [part.replace("{fd}", str(fd)).replace("{port}", str(self.port)) for part in command]
            argv.append(import_string)
            if any("{port}" in part for part in command):
                self._sock.close()
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            pass_fds=[fd] if self._sock.fileno() != -1 else [],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        # A developer's tools carry this user's local credential (`trigger` finds it by itself);
        # `anonymous` is anyone else, such as a stranger forwarded by a proxy on this machine.
        self.client = http_client(self.url)
        self.anonymous = http_client(self.url)

    def wait_ready(self, path: str = "/__reload", timeout: float = 20.0) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                # The test holds the listening socket, so a connection is accepted by the kernel
                # even when no server runs: probe briefly and look at the process again.
                self.client.get(path, timeout=0.25)
            except httpx.TransportError:
                return False
            return True

        wait_until(ready, timeout)
        credential = local_credential_of(os.environ)
        if credential is not None and "authorization" not in self.client.headers:
            self.client.headers["authorization"] = f"Bearer {credential}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def status(self) -> dict[str, Any]:
        response = self.client.get("/__reload")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def stop(self) -> int:
        self.client.close()
        self.anonymous.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        self._sock.close()
        return self.process.returncode


def local_credential_of(environ: dict[str, str] | os._Environ[str]) -> str | None:
    """The local credential servers started with ``environ`` created, if any."""
    path = Path(environ.get("XDG_RUNTIME_DIR", "/nonexistent")) / "reload-middleware" / "credential"
    return path.read_text().strip() if path.exists() else None


ServerFactory = Callable[..., Server]


def fresh_report(root: Path, package: str) -> Any:
    """What a new interpreter computes from the sources now on disk; ``None`` if importing fails."""
    result = _fresh_python(root, f"import json, {package}.report as r; print(json.dumps(r.report()))")
    return json.loads(result.stdout) if result.returncode == 0 else None


def _fresh_python(root: Path, script: str) -> subprocess.CompletedProcess[str]:
    """``script`` run by a new interpreter on the sources now on disk (no bytecode, no reloading)."""
    with tempfile.TemporaryDirectory() as no_bytecode:
        env = {**os.environ, "PYTHONPATH": str(root), "PYTHONPYCACHEPREFIX": no_bytecode}
        env.pop("RELOAD_MIDDLEWARE", None)
        return subprocess.run(
            [sys.executable, "-B", "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=60
        )


def fresh_get(root: Path, import_string: str, path: str) -> tuple[int, str]:
    """What a new interpreter's app ``import_string`` (WSGI or ASGI, no reloading) answers to
    ``GET path``."""
    module, _, attribute = import_string.partition(":")
    script = f"""
import asyncio, importlib, inspect, httpx
app = getattr(importlib.import_module({module!r}), {attribute!r})
if inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(type(app).__call__):
    async def get():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            return await client.get({path!r})
    response = asyncio.run(get())
else:
    client = httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://127.0.0.1")
    response = client.get({path!r})
print(response.status_code)
print(response.text, end="")
"""
    result = _fresh_python(root, script)
    assert result.returncode == 0, result.stderr
    status, _, body = result.stdout.partition("\n")
    return int(status), body


class SlowRequest:
    """``GET /slow?seconds=N`` of an app tree that has that route, sent from a thread of its own;
    once made, it is in flight on the serving version."""

    def __init__(self, server: Server, seconds: float) -> None:
        self._answers: list[httpx.Response] = []
        self._thread = threading.Thread(
            target=lambda: self._answers.append(server.client.get("/slow", params={"seconds": seconds}))
        )
        self._thread.start()
        wait_until(lambda: server.status()["versions"][0]["in_flight"] == 1)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def answer(self, timeout: float) -> httpx.Response:
        self._thread.join(timeout)
        return self._answers[0]

"""The command line, end to end in subprocesses: serve, edit, break, see the error page, fix, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from apps import STARLETTE_APP, write_app
from harness import AppTree, http_client, local_credential_of, wait_until
from playwright.sync_api import Browser
from test_browser import DOCS, browser  # noqa: F401  (the Chromium fixture)

BIN = Path(sys.executable).parent


def free_port() -> int:
    # The CLI binds its own socket, as uvicorn does; a port the kernel just handed out is free.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_cli(tree: AppTree, *arguments: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reload_middleware", *arguments],
        cwd=tree.root,
        env={k: v for k, v in os.environ.items() if not k.startswith("RELOAD_MIDDLEWARE")},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class CliServer:
    def __init__(self, tree: AppTree, *arguments: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tree.root / "cli.log"
        self._log = self.log_path.open("wb")
        environment = {k: v for k, v in os.environ.items() if not k.startswith("RELOAD_MIDDLEWARE")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reload_middleware", *arguments, "--port", str(self.port)],
            cwd=tree.root,
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.client = http_client(self.url)

        def ready() -> bool:
            assert self.process.poll() is None, self.log()
            try:
                status = self.client.get("/__reload").json()
            except httpx.TransportError:
                return False
            # In manual mode nothing is watched (and a token hides the status): up is ready.
            return "--manual" in arguments or bool(status["watching"])

        try:
            wait_until(ready, timeout=30)
        except BaseException:
            self.interrupt()
            raise
        credential = local_credential_of(os.environ)
        if credential is not None:
            self.client.headers["authorization"] = f"Bearer {credential}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def interrupt(self) -> int:
        """Ctrl-C, as a person stops it."""
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        return self.process.returncode


@pytest.fixture
def cli(tree: AppTree) -> Iterator[Callable[..., CliServer]]:
    """Start `python -m reload_middleware ...` servers; each is stopped after the test."""
    servers: list[CliServer] = []

    def start(*arguments: str) -> CliServer:
        server = CliServer(tree, *arguments)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.interrupt()


def test_help_documents_every_option_with_its_default_and_variable(tree: AppTree) -> None:
    result = run_cli(tree, "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # click wraps lines
    for option in ("--host", "--port", "--workers", "--factory", "--log-level", "--watch", "--exclude", "--token"):
        assert option in text
    # uvicorn's own, under its names, with its defaults
    for option in ("--app-dir", "--reload-dir", "--env-file", "--root-path", "--proxy-headers", "--uds"):
        assert option in text
    for option in ("--forwarded-allow-ips", "--no-access-log", "--lifespan", "--log-config", "--ssl-keyfile"):
        assert option in text
    assert "[default: 127.0.0.1]" in text
    assert "[env var: RELOAD_MIDDLEWARE_DRAIN_TIMEOUT; default: 30.0]" in text
    assert "env var: RELOAD_MIDDLEWARE_TOKEN" in text
    trigger = run_cli(tree, "trigger", "--help")
    assert trigger.returncode == 0
    assert "--force" in trigger.stdout
    assert "could not be reached" in " ".join(trigger.stdout.split())
    script = subprocess.run([str(BIN / "reload-middleware"), "--help"], capture_output=True, text=True, timeout=60)
    assert script.returncode == 0
    assert "Usage: reload-middleware [OPTIONS] APP" in script.stdout


def test_version_names_ours_uvicorns_and_pythons(tree: AppTree) -> None:
    from reload_middleware import __version__

    result = run_cli(tree, "--version")
    assert result.returncode == 0
    assert result.stdout.startswith(f"reload-middleware {__version__} (uvicorn ")


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("PKG.nowhere:app", "Could not import module 'PKG.nowhere'"),
        ("PKG.main:nothing", "Module 'PKG.main' has no attribute 'nothing'"),
        ("PKG.broken:app", "failed inside the module: ZeroDivisionError"),
        ("not-an-import-string", "must be in format"),
    ],
)
def test_a_wrong_import_string_says_which_part_is_wrong_and_exits_as_uvicorn(
    tree: AppTree, app: str, message: str
) -> None:
    write_app(tree, STARLETTE_APP)
    tree.write("broken.py", "x = 1\ny = x / 0\n")
    # A broken module fails fast in manual mode (production); watch mode waits for its fix.
    manual = ["--manual"] if "broken" in app else []
    result = run_cli(tree, app.replace("PKG", tree.name), *manual)
    assert result.returncode == 3  # uvicorn's "could not start"
    assert message.replace("PKG", tree.name) in result.stderr
    if "broken" in app:
        assert "Traceback" in result.stderr
        assert "line 2" in result.stderr
        assert "importlib" not in result.stderr  # the user's frames only
        assert "reload_middleware" not in result.stderr.replace("reload-middleware:", "")


def test_in_watch_mode_an_app_broken_at_start_is_served_once_fixed(
    tree: AppTree, cli: Callable[..., CliServer]
) -> None:
    write_app(tree, STARLETTE_APP)
    working = tree.path("leaf.py").read_text()
    tree.write("leaf.py", "VALUE = (\n")  # already broken when the server starts
    server = cli(f"{tree.name}.main:app")
    answer = server.client.get("/")
    assert (answer.status_code, answer.headers["x-reload-error"].split(":")[0]) == (500, "SyntaxError")
    assert "could not be imported (SyntaxError)" in answer.text
    status = server.client.get("/__reload").json()
    assert (status["version"], status["last_error"]["type"], status["last_error"]["line"]) == (0, "SyntaxError", 1)
    assert "The app failed to import" in server.log()
    tree.write("leaf.py", working)
    wait_until(lambda: server.client.get("/").status_code == 200, explain=lambda: server.log())
    fixed = server.client.get("/")
    assert (fixed.text, fixed.headers["x-reload-version"], "x-reload-error" in fixed.headers) == ("one", "1", False)
    assert server.client.get("/__reload").json()["last_error"]["resolved"] is True


def test_a_wsgi_app_is_refused_at_start_with_what_to_run_instead(tree: AppTree) -> None:
    tree.write("__init__.py", "")
    tree.write("flask_app.py", "from flask import Flask\n\napp = Flask(__name__)\n")
    result = run_cli(tree, f"{tree.name}.flask_app:app")
    assert result.returncode == 3
    assert "is a WSGI app" in result.stderr
    assert "gunicorn" in result.stderr


def test_a_factory_is_detected_as_uvicorn_detects_it_and_uvicorns_options_are_taken(
    tree: AppTree, cli: Callable[..., CliServer]
) -> None:
    write_app(tree, STARLETTE_APP)
    tree.write("factory.py", "from PKG.main import app\n\n\ndef create_app():\n    return app\n")
    server = cli(
        f"{tree.name}.factory:create_app",  # no --factory
        "--root-path",
        "/prefix",
        "--no-access-log",
        "--proxy-headers",
        "--forwarded-allow-ips",
        "127.0.0.1",
        "--reload",  # accepted: reloading is always on
        "--reload-dir",
        str(tree.root),
    )
    assert server.client.get("/").text == "one"
    tree.write("leaf.py", 'VALUE = "two"\n')
    wait_until(lambda: server.client.get("/").text == "two")
    log = server.log()
    assert "an app factory, called to make the app" in log
    assert '"GET / HTTP/1.1" 200' not in log  # --no-access-log


def test_serve_edit_break_see_the_error_page_fix_and_stop(
    tree: AppTree,
    cli: Callable[..., CliServer],
    browser: Browser,  # noqa: F811
) -> None:
    write_app(tree, STARLETTE_APP)
    server = cli(f"{tree.name}.main:app")
    pid = server.client.get("/process").json()["pid"]
    assert server.client.get("/").text == "one"

    tree.write("leaf.py", 'VALUE = "two"\n')
    wait_until(lambda: server.client.get("/").text == "two")

    tree.write("leaf.py", 'VALUE = "three"\nVALUE.missing_method()\n')
    wait_until(lambda: server.client.get("/__reload").json()["last_error"] is not None)
    api = server.client.get("/")
    assert (api.status_code, api.text) == (200, "two")  # API clients keep the old version...
    assert api.headers["x-reload-error"].startswith("AttributeError: 'str' object has no attribute")
    page = server.client.get("/", headers={"accept": "text/html"})
    assert page.status_code == 500  # ...a browser is shown what to fix
    assert "Reload failed: AttributeError" in page.text
    assert f"{tree.path('leaf.py')}</b>, line 2" in page.text
    assert "VALUE.missing_method()" in page.text

    view = browser.new_page(viewport={"width": 1000, "height": 720})
    # The developer's browser: the status-page link the server logged, then the app's page.
    view.goto(f"{server.url}/__reload#token={local_credential_of(os.environ)}")
    view.wait_for_selector("text=Reload everything")
    view.goto(f"{server.url}/")
    view.wait_for_selector("text=Reload failed")
    assert "VALUE.missing_method()" in view.locator("body").inner_text()  # the failing line, for its author
    view.screenshot(path=str(DOCS / "error-page.png"), full_page=True)
    view.close()

    tree.write("leaf.py", 'VALUE = "four"\n')
    wait_until(lambda: server.client.get("/", headers={"accept": "text/html"}).text == "four")
    assert "x-reload-error" not in server.client.get("/").headers
    assert server.client.get("/process").json()["pid"] == pid
    assert server.interrupt() == 0
    log = server.log()
    assert "Reloaded " in log
    assert "Reload failed, the old version keeps serving: AttributeError" in log
    assert "Finished server process" in log


def test_trigger_reports_and_exits_for_a_deploy_script(tree: AppTree, cli: Callable[..., CliServer]) -> None:
    write_app(tree, STARLETTE_APP)
    server = cli(f"{tree.name}.main:app", "--manual", "--token", "deploy-token")
    tree.write("leaf.py", 'VALUE = "two"\n')
    refused = run_cli(tree, "trigger", server.url)  # this user's local credential: not this server's
    assert refused.returncode == 2
    assert "did not prove it holds this user's local credential" in refused.stderr
    assert "(pass --token)" in refused.stderr

    done = run_cli(tree, "trigger", server.url, "--token", "deploy-token")
    assert done.returncode == 0, done.stderr
    assert "now version 2" in done.stdout
    assert server.client.get("/").text == "two"

    unchanged = run_cli(tree, "trigger", server.url, "--token", "deploy-token")
    assert (unchanged.returncode, unchanged.stdout.strip()) == (0, "nothing changed, version 2 serves on")

    tree.write("leaf.py", "VALUE = (\n")
    failed = run_cli(tree, "trigger", server.url, "--token", "deploy-token")
    assert failed.returncode == 1
    assert "reload failed, version 2 serves on: SyntaxError" in failed.stdout

    forced = run_cli(tree, "trigger", server.url, "--token", "deploy-token", "--force")
    assert forced.returncode == 1  # still broken: forcing does not hide it
    unreachable = run_cli(tree, "trigger", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 2
    assert "could not reach" in unreachable.stderr
    schemeless = run_cli(tree, "trigger", f"127.0.0.1:{free_port()}")
    assert schemeless.returncode == 2
    assert "is not a server URL such as http://127.0.0.1:8000" in schemeless.stderr


def test_the_logged_link_names_the_address_the_server_listens_on(tree: AppTree, cli: Callable[..., CliServer]) -> None:
    write_app(tree, STARLETTE_APP)
    server = cli(f"{tree.name}.main:app", "--host", "localhost")  # uvicorn listens on 127.0.0.1 only
    logged = next(line for line in server.log().splitlines() if "Reload status page:" in line)
    # Never `localhost`: a browser may try ::1 first, where another local user can listen.
    assert f"http://127.0.0.1:{server.port}/__reload#token=" in logged


def test_the_watched_directories_are_said_at_start_as_uvicorn_says_them(
    tree: AppTree, cli: Callable[..., CliServer]
) -> None:
    write_app(tree, STARLETTE_APP)
    server = cli(f"{tree.name}.main:app")
    wait_until(lambda: "Will watch for changes in these directories" in server.log())
    line = next(line for line in server.log().splitlines() if "Will watch for changes" in line)
    assert str(tree.path("__init__.py").parent) in line


def test_uvicorns_interface_option_is_taken(tree: AppTree, cli: Callable[..., CliServer]) -> None:
    write_app(tree, STARLETTE_APP)
    server = cli(f"{tree.name}.main:app", "--interface", "asgi3")
    assert server.client.get("/").text == "one"
    refused = run_cli(tree, f"{tree.name}.main:app", "--interface", "wsgi")
    assert refused.returncode == 3
    assert "serves ASGI apps" in refused.stderr


def test_uvicorns_reload_delay_makes_a_burst_of_saves_one_reload(tree: AppTree, cli: Callable[..., CliServer]) -> None:
    write_app(tree, STARLETTE_APP)
    server = cli(f"{tree.name}.main:app", "--reload-delay", "1")
    for value in ("two", "three", "four"):  # saved three times in 100 ms (a formatter after the save)
        tree.write("leaf.py", f"VALUE = {value!r}\n")
        time.sleep(0.05)
    wait_until(lambda: server.client.get("/").text == "four")
    status = server.client.get("/__reload").json()
    assert (status["version"], status["reloads"]) == (2, 1)


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--build-timeout", "0"], "0.0 must be more than 0 seconds"),
        (["--drain-timeout", "-1"], "-1.0 must be a finite number of seconds"),
        (["--token", " secret "], "the value given must not start or end with white space"),
    ],
)
def test_a_bad_value_is_named_by_the_flag_typed(tree: AppTree, arguments: list[str], said: str) -> None:
    write_app(tree, STARLETTE_APP)
    refused = run_cli(tree, f"{tree.name}.main:app", *arguments)
    assert refused.returncode == 2  # click's usage error, as uvicorn's own options give
    assert f"Invalid value for '{arguments[0]}'" in refused.stderr
    assert said in refused.stderr
    assert "secret" not in refused.stderr  # a token is never echoed

"""The status page in a real headless Chromium (Debian's package): load it, press the button, see
the version go up. Screenshots go to a temporary directory; ``make screenshots`` sets
``SCREENSHOTS_DIR=docs`` to refresh the README's."""

from __future__ import annotations

import http.server
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from apps import STARLETTE_APP, write_app
from harness import AppTree, ServerFactory, local_credential_of
from playwright.sync_api import Browser, Page, sync_playwright

# Tests never write into tracked files unless asked to.
DOCS = Path(os.environ.get("SCREENSHOTS_DIR") or tempfile.mkdtemp(prefix="reload-middleware-screenshots-"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root, and with no network but loopback: no sandbox, no background requests to anywhere.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1000, "height": 720})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def test_the_reload_button_brings_up_a_new_version(tree: AppTree, serve: ServerFactory, page: Page) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    # Without the credential, a loopback visitor sees the status, but no reload button.
    page.goto(f"{server.url}/__reload")
    assert page.locator("h1").inner_text() == "Serving version 1"
    assert page.get_by_role("button", name="Reload now").count() == 0
    assert "open the status-page link the server logged" in page.locator("body").inner_text()
    # The link the server logged carries the credential in its fragment.
    logged = next(line for line in server.log().splitlines() if "Reload status page:" in line)
    link = logged.split("Reload status page: ")[1].replace("http://<this server>", server.url)
    page.goto(link)
    page.wait_for_selector("text=Reload now")
    assert "#" not in page.url  # taken out of the address bar at once

    tree.write("leaf.py", 'VALUE = "two"\n')
    page.get_by_role("button", name="Reload now").click()
    page.wait_for_selector("text=Serving version 2")
    body = page.locator("body").inner_text()
    assert f"{tree.name}.leaf changed" in body
    assert "1 reload, 0 failed" in body
    assert "A build may take 5 s (build_timeout)" in body
    assert "uploads, streamed responses and websockets never hold a swap back" in body
    assert server.client.get("/").text == "two"

    page.get_by_role("button", name="Reload everything").click()
    page.wait_for_selector("text=Serving version 3")
    page.screenshot(path=str(DOCS / "status-page.png"), full_page=True)


def test_the_page_shows_the_last_error_with_its_traceback(tree: AppTree, serve: ServerFactory, page: Page) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    tree.write("mid.py", "from PKG.leaf import VALUE\n\nraise RuntimeError('mid is broken')\n")
    page.goto(f"{server.url}/__reload#token={local_credential_of(os.environ)}")
    page.get_by_role("button", name="Reload now").click()
    page.wait_for_selector("text=Last error")
    text = page.locator(".error").inner_text()
    assert "RuntimeError: mid is broken" in text
    assert f"{tree.path('mid.py')}, line 3" in text
    assert "Traceback (most recent call last)" in text
    assert page.locator("h1").inner_text() == "Serving version 1"
    page.screenshot(path=str(DOCS / "status-page-error.png"), full_page=True)


def test_with_a_token_the_page_asks_for_it_and_sends_it_with_the_reload(
    tree: AppTree, serve: ServerFactory, page: Page
) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0", "RELOAD_MIDDLEWARE_TOKEN": "s3cret-token"})
    response = page.goto(f"{server.url}/__reload")
    assert response is not None
    assert response.status == 200  # a loopback read, without error details or reload buttons
    page.fill("input[name=token]", "wrong")
    page.get_by_role("button", name="Open").click()
    page.wait_for_selector("input[name=token]")
    assert page.get_by_role("button", name="Reload now").count() == 0

    page.fill("input[name=token]", "s3cret-token")
    page.get_by_role("button", name="Open").click()
    page.wait_for_selector("text=Serving version 1")
    tree.write("leaf.py", 'VALUE = "two"\n')
    page.get_by_role("button", name="Reload now").click()
    page.wait_for_selector("text=Serving version 2")
    assert server.client.get("/").text == "two"


ATTACKS = """<!doctype html><html><body>
<form id="f" method="post" action="{admin}?force=1" target="sink"><input name="x" value="1"></form>
<iframe name="sink"></iframe>
<iframe src="{admin}"></iframe>
<img src="{admin}">
<script>
  const admin = "{admin}";
  document.getElementById("f").submit();
  fetch(admin, {{method: "POST", mode: "no-cors"}}).catch(() => {{}});
  fetch(admin, {{method: "POST", credentials: "include"}}).catch(() => {{}});
  fetch(admin + "?force=1", {{method: "POST", mode: "no-cors", credentials: "include",
    headers: {{"Content-Type": "text/plain"}}, body: "force"}}).catch(() => {{}});
  navigator.sendBeacon(admin);
  navigator.sendBeacon(admin + "?force=1", "x");
  document.title = "fired";
</script></body></html>"""


@pytest.fixture
def attacker_site() -> Iterator[Callable[[str], str]]:
    """Serves the attack page on another site (`localhost` is not the same site as 127.0.0.1)."""
    pages: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, b"")
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def publish(html: str) -> str:
        pages["/attack"] = html.encode()
        return f"http://localhost:{server.server_address[1]}/attack"

    yield publish
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_cross_site_pages_cannot_reload_even_in_the_developers_browser(
    tree: AppTree, serve: ServerFactory, page: Page, attacker_site: Callable[[str], str]
) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    page.goto(f"{server.url}/__reload#token={local_credential_of(os.environ)}")
    page.wait_for_selector("text=Reload now")  # the browser now holds the credential (per origin)
    tree.write("leaf.py", 'VALUE = "two"\n')  # an edit a forged request would make live
    page.goto(attacker_site(ATTACKS.format(admin=f"{server.url}/__reload")))
    page.wait_for_function("document.title === 'fired'")
    page.wait_for_timeout(1500)  # room for every forged request to arrive
    assert server.status()["reloads"] == 0
    assert server.client.get("/").text == "one"
    assert "POST /__reload" in server.log()  # they did reach the server, and were refused


@pytest.fixture
def another_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """Another server on the same host, on another port (another local user's): what it receives."""
    received: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            received.append(dict(self.headers.items()))
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"hi")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_the_browser_keeps_the_credential_for_its_origin_and_app_pages_still_show_the_details(
    tree: AppTree, serve: ServerFactory, page: Page, another_server: tuple[str, list[dict[str, str]]]
) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0", "RELOAD_MIDDLEWARE_ERROR_PAGE": "1"})
    credential = local_credential_of(os.environ)
    assert credential is not None
    page.goto(f"{server.url}/__reload#token={credential}")
    page.wait_for_selector("text=Reload now")
    # Kept for this origin only: no cookie, which every server of the host would receive.
    assert [cookie for cookie in page.context.cookies() if credential in cookie["value"]] == []
    other_url, received = another_server
    page.goto(other_url)
    assert received  # the page, and whatever else Chromium asks for (a favicon)
    assert credential not in str(received)
    # An app page while a reload fails: served without the details, which it then fetches from
    # the admin endpoint with the credential (the app behind us never receives it).
    tree.write("mid.py", "from PKG.leaf import VALUE\n\nraise RuntimeError('mid is broken')\n")
    assert server.client.post("/__reload").json()["ok"] is False
    page.goto(f"{server.url}/mid")
    page.wait_for_selector("text=mid is broken")
    assert f"{tree.path('mid.py')}" in page.locator("body").inner_text()
    assert "Traceback" in page.locator("body").inner_text()


# Every field of an error under the importer's control, each with markup that would run script.
MARKUP_ERROR = """
Kind = type("<img src=x onerror=window.pwned=1>", (SyntaxError,), {})
raise Kind("<script>window.pwned=2</script>", ("<b>f</b>.py", "<i>9</i>", 1, "<svg onload=window.pwned=3>"))
"""


def test_markup_in_every_field_of_an_error_is_shown_as_text_on_every_page(
    tree: AppTree, serve: ServerFactory, page: Page
) -> None:
    write_app(tree, STARLETTE_APP)
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0", "RELOAD_MIDDLEWARE_ERROR_PAGE": "1"})
    page.goto(f"{server.url}/__reload#token={local_credential_of(os.environ)}")
    page.wait_for_selector("text=Reload now")
    tree.write("leaf.py", MARKUP_ERROR)
    assert server.client.post("/__reload").json()["ok"] is False
    for url in (f"{server.url}/__reload", f"{server.url}/", f"{server.url}/__reload?page=error"):
        page.goto(url)
        page.wait_for_selector("text=window.pwned=2")  # the message, as text (with its details)
        page.wait_for_timeout(300)  # room for an onerror or onload to fire
        assert page.evaluate("window.pwned") is None, url
        text = page.locator("body").inner_text()
        assert "<img src=x onerror=window.pwned=1>" in text
        assert "<b>f</b>.py" in text

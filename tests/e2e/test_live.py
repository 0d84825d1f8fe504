"""The developer's loop: pages that reload themselves after a reload and show the error while one
fails (in a real headless Chromium, against the command line), what the injection leaves alone,
and files read at import as dependencies."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from apps import FLASK_APP, write_app, write_semantic_app
from harness import AppTree, Server, ServerFactory, fresh_report, local_credential_of, wait_until
from playwright.sync_api import Browser
from test_browser import DOCS, browser  # noqa: F401  (the Chromium fixture)
from test_cli import CliServer, cli  # noqa: F401  (the command-line server fixture)
from test_wsgi import GUNICORN

HTML_APP = {
    "__init__.py": "",
    "leaf.py": 'VALUE = "one"\n',
    "main.py": """
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.middleware.gzip import GZipMiddleware
        from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse
        from starlette.routing import Route

        from PKG import leaf

        PAGE = "<!doctype html><html><head><title>demo</title></head><body><h1>{}</h1>{}</body></html>"


        async def home(request):
            return HTMLResponse(PAGE.format(leaf.VALUE, "<p>" + "padding " * 200 + "</p>"))


        async def strict(request):
            policy = "default-src 'none'; script-src 'nonce-abc'"
            return HTMLResponse(PAGE.format(leaf.VALUE, ""), headers={"content-security-policy": policy})


        async def data(request):
            return JSONResponse({"value": leaf.VALUE})


        POLICIES = {
            "self-only": ["default-src 'self'"],  # no inline scripts: written to keep scripts out
            "dynamic": ["script-src 'self' 'unsafe-inline' 'strict-dynamic'"],
            "two": ["script-src 'self' 'unsafe-inline'", "script-src 'none'"],  # the second forbids
            "open": ["script-src 'self' 'unsafe-inline'; connect-src 'self'"],
        }


        async def policed(request):
            headers = [(b"content-type", b"text/html; charset=utf-8")]
            for policy in POLICIES[request.path_params["name"]]:
                headers.append((b"content-security-policy", policy.encode()))
            response = HTMLResponse(PAGE.format(leaf.VALUE, ""))
            response.raw_headers = [*headers, (b"content-length", str(len(response.body)).encode())]
            return response


        async def meta(request):
            policy = '<meta http-equiv="Content-Security-Policy" content="script-src {}">'.format("'none'")
            return HTMLResponse(PAGE.format(leaf.VALUE, policy))


        async def partial(request):
            part = PAGE.format(leaf.VALUE, "")[:10]
            return HTMLResponse(part, status_code=206, headers={"content-range": "bytes 0-9/99"})


        async def text(request):
            return PlainTextResponse("<html>not html</html>")


        app = Starlette(
            routes=[
                Route("/", home, methods=["GET", "HEAD"]),
                Route("/strict", strict),
                Route("/data", data),
                Route("/text", text),
                Route("/policed/{name}", policed),
                Route("/meta", meta),
                Route("/partial", partial),
            ],
            middleware=[Middleware(GZipMiddleware, minimum_size=100)],
        )
    """,
    "asgi.py": """
        from reload_middleware import ReloadMiddleware

        app = ReloadMiddleware("PKG.main:app")
    """,
}

SCRIPT_TAG = '<script src="/__reload/live.js?v='


def write_html_app(tree: AppTree) -> None:
    for relative, source in HTML_APP.items():
        tree.write(relative, source)


def test_a_page_follows_edits_shows_a_broken_one_and_recovers_by_itself(
    tree: AppTree,
    cli: Callable[..., CliServer],  # noqa: F811
    browser: Browser,  # noqa: F811
) -> None:
    write_html_app(tree)
    server = cli(f"{tree.name}.main:app")
    context = browser.new_context(viewport={"width": 1000, "height": 640})
    view = context.new_page()
    view.set_default_timeout(10_000)
    # The developer opened the status-page link the server logged: error details for this browser.
    view.goto(f"{server.url}/__reload#token={local_credential_of(os.environ)}")
    view.wait_for_selector("text=Reload everything")
    view.goto(f"{server.url}/")
    assert view.locator("h1").inner_text() == "one"

    tree.write("leaf.py", 'VALUE = "two"\n')  # saved: the page shows it, untouched
    view.wait_for_function("document.querySelector('h1') && document.querySelector('h1').textContent === 'two'")

    tree.write("leaf.py", 'VALUE = "three"\nVALUE.missing_method()\n')  # broken: the overlay says so
    overlay = view.locator("#reload-middleware-overlay")
    overlay.wait_for(state="visible")
    # Its details come from the admin endpoint, with the credential this browser keeps.
    view.wait_for_function("document.getElementById('reload-middleware-overlay').textContent.includes('line 2')")
    text = overlay.inner_text()
    assert "Reload failed: AttributeError" in text
    assert f"{tree.path('leaf.py')}, line 2" in text
    view.screenshot(path=str(DOCS / "live-refresh-overlay.png"))

    tree.write("leaf.py", 'VALUE = "four"\n')  # fixed: the overlay goes, the fixed page comes
    view.wait_for_function("document.querySelector('h1') && document.querySelector('h1').textContent === 'four'")
    assert overlay.count() == 0
    context.close()


def test_what_the_injection_changes_and_what_it_leaves_alone(tree: AppTree, serve: ServerFactory) -> None:
    write_html_app(tree)
    server = serve(env={"RELOAD_MIDDLEWARE_LIVE_REFRESH": "1"})
    browser_headers = {"accept": "text/html,application/xhtml+xml", "accept-encoding": "gzip"}
    page = server.client.get("/", headers=browser_headers)
    assert page.headers.get("content-encoding") is None  # asked uncompressed, so that it can take the script
    assert page.text.endswith(f'{SCRIPT_TAG}1"></script>\n')
    assert "content-length" not in page.headers  # the server frames the longer body itself
    assert "<h1>one</h1>" in page.text
    head = server.client.head("/", headers={**browser_headers, "accept-encoding": "identity"})  # untouched
    assert int(head.headers["content-length"]) == len(page.content) - len(f'\n{SCRIPT_TAG}1"></script>\n')

    api = server.client.get("/", headers={"accept-encoding": "gzip"})  # not a navigation: as the app made it
    assert api.headers["content-encoding"] == "gzip"
    assert SCRIPT_TAG not in api.text  # (httpx decompressed it)
    assert SCRIPT_TAG not in server.client.get("/strict", headers=browser_headers).text  # its CSP forbids it
    for name in ("self-only", "dynamic", "two"):  # policies that keep our script out, or mean to
        assert SCRIPT_TAG not in server.client.get(f"/policed/{name}", headers=browser_headers).text, name
    assert SCRIPT_TAG in server.client.get("/policed/open", headers=browser_headers).text
    assert SCRIPT_TAG not in server.client.get("/meta", headers=browser_headers).text  # a <meta> policy
    partial = server.client.get("/partial", headers=browser_headers)
    assert (partial.status_code, len(partial.content), SCRIPT_TAG in partial.text) == (206, 10, False)
    assert SCRIPT_TAG not in server.client.get("/text", headers=browser_headers).text  # not HTML
    assert server.client.get("/data", headers=browser_headers).json() == {"value": "one"}
    script = server.client.get("/__reload/live.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "EventSource" in script.text


def test_the_event_stream_follows_the_admin_rules(tree: AppTree, serve: ServerFactory) -> None:
    write_html_app(tree)
    server = serve(env={"RELOAD_MIDDLEWARE_LIVE_REFRESH": "1", "RELOAD_MIDDLEWARE_TOKEN": "secret"})
    tree.write("leaf.py", "VALUE = undefined_name\n")
    wait_until(lambda: server.client.get("/__reload", headers={"authorization": "Bearer secret"}).json()["failures"])

    def first_state(headers: dict[str, str]) -> str:
        with server.anonymous.stream("GET", "/__reload/events", headers=headers) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data:"):
                    return line
        raise AssertionError("no state sent")

    anonymous = first_state({})  # a direct loopback client: the type, no details
    assert '"failing": {"type": "NameError"}' in anonymous
    detailed = first_state({"authorization": "Bearer secret"})
    assert "undefined_name" in detailed
    forwarded = server.anonymous.get("/__reload/events", headers={"x-forwarded-for": "203.0.113.9"})
    assert forwarded.status_code == 403
    assert server.anonymous.post("/__reload/events").status_code == 405


@pytest.mark.parametrize(
    "how", ["manual mode (off by default)", "RELOAD_MIDDLEWARE_LIVE_REFRESH=0", "--no-live-refresh"]
)
def test_with_live_refresh_off_no_page_carries_the_script(
    tree: AppTree,
    serve: ServerFactory,
    cli: Callable[..., CliServer],  # noqa: F811
    how: str,
) -> None:
    write_html_app(tree)
    if how.startswith("manual"):
        server: Server | CliServer = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    elif how.startswith("RELOAD"):
        server = serve(env={"RELOAD_MIDDLEWARE_LIVE_REFRESH": "0"})
    else:
        server = cli(f"{tree.name}.main:app", "--no-live-refresh")
    client = server.client
    page = client.get("/", headers={"accept": "text/html"})
    assert "<h1>one</h1>" in page.text
    assert SCRIPT_TAG not in page.text
    assert client.get("/__reload/live.js").status_code == 404  # the app's own 404: nothing of ours


SETTINGS_APP = {
    "settings.py": """
        import json
        from pathlib import Path

        import yaml

        ROOT = Path(__file__).parent
        # One file beside the package (the project root), one inside it; read with pathlib and open().
        GREETING = json.loads((ROOT.parent / "config.json").read_text())["greeting"]
        with open(ROOT / "limits.yaml") as stream:
            LIMITS = yaml.safe_load(stream)
    """,
    "report.py": """
        from PKG import settings


        def report():
            return {"greeting": settings.GREETING, "limits": settings.LIMITS}
    """,
}


def test_files_read_at_import_are_dependencies_of_the_module_that_read_them(
    tree: AppTree, serve: ServerFactory
) -> None:
    write_semantic_app(tree, SETTINGS_APP)
    (tree.root / "config.json").write_text('{"greeting": "hello 1"}')
    tree.write("limits.yaml", "requests: 10\n")
    server = serve()
    assert server.client.get("/").json() == {"greeting": "hello 1", "limits": {"requests": 10}}
    saving = tree.root / ".config.json.saving"
    saving.write_text('{"greeting": "hello 2"}')
    saving.replace(tree.root / "config.json")
    wait_until(lambda: server.client.get("/").json()["greeting"] == "hello 2")
    tree.write("limits.yaml", "requests: 20\n")
    wait_until(lambda: server.client.get("/").json()["limits"] == {"requests": 20})
    assert server.client.get("/").json() == fresh_report(tree.root, tree.name)
    status = server.status()
    assert status["last_reload"]["changed"] == [f"{tree.name}.settings"]  # the module that read it
    assert status["failures"] == 0


def test_a_wsgi_app_under_gunicorn_gets_live_refresh_too(tree: AppTree, serve: ServerFactory) -> None:
    write_app(tree, FLASK_APP)
    server = serve("PKG.wsgi:app", env={"RELOAD_MIDDLEWARE_LIVE_REFRESH": "1"}, command=GUNICORN)
    page = server.client.get("/", headers={"accept": "text/html", "accept-encoding": "gzip"})
    assert page.text == f'one\n{SCRIPT_TAG}1"></script>\n'
    assert "content-length" not in page.headers  # gunicorn frames the longer body itself (chunked)
    assert server.client.get("/process").json()["pid"]  # JSON: untouched
    assert "EventSource" in server.client.get("/__reload/live.js").text

    def stream_states() -> list[str]:
        with server.client.stream("GET", "/__reload/events") as response:
            return [line for line in response.iter_lines() if line.startswith("data:")]

    assert stream_states()[0] == 'data: {"version": 1, "failing": null}'
    tree.write("leaf.py", 'VALUE = "two"\n')
    wait_until(lambda: server.client.get("/").text.startswith("two"))
    assert stream_states()[0] == 'data: {"version": 2, "failing": null}'

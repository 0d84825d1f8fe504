"""The admin endpoint's pages for people: the status page, the error page shown while the latest
reload is failing, and the login page a browser without the credential gets.

Plain server-rendered HTML. The reload buttons are forms; a few lines of script send the credential
(a token typed in, or the local credential taken from the fragment of the link the server logged)
with each of them. The browser keeps it in the origin's local storage (this host and port only):
never in a cookie, which the browser would send to every server of the host (another local
user's included) and to the app behind us. A page served without details (a navigation carries
no credential) fetches them from the admin endpoint, with the credential, and shows itself again.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Mapping
from typing import Any

ERROR_PAGE_QUERY = "page=error"  # the admin endpoint's error page, for a page shown without details
_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1d2125}
h1{font-size:1.5rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:1.6rem 0 .4rem}
.muted{color:#5b6570}table{border-collapse:collapse;min-width:24rem}
td,th{border-bottom:1px solid #dde1e5;padding:.3rem .8rem;text-align:left}
pre{background:#f6f8fa;border:1px solid #dde1e5;padding:.8rem;overflow:auto;font-size:13px}
.error{border-left:4px solid #c62828;padding-left:1rem}.ok{color:#2e7d32}
button{font:inherit;padding:.45rem 1rem;margin-right:.5rem;border-radius:6px;border:1px solid #8a949e;cursor:pointer}
button.primary{background:#1f6feb;border-color:#1f6feb;color:#fff}
input{font:inherit;padding:.4rem;border:1px solid #8a949e;border-radius:6px}
"""

_SCRIPT = """
(() => {
  const key = "reload-middleware-token";
  // Per origin (host and port), never a cookie; an older version's cookie goes.
  document.cookie = "reload_middleware_credential=; path=/; max-age=0; samesite=strict";
  function remember(token) { localStorage.setItem(key, token); }
  function stored() { return localStorage.getItem(key); }
  async function show(url, method) {
    const headers = {Accept: "text/html", Authorization: "Bearer " + stored()};
    const response = await fetch(url, {method: method, headers: headers});
    const page = await response.text();
    document.open(); document.write(page); document.close();
  }
  function submitted(event) {
    const form = event.target;
    if (form.id === "login") {
      event.preventDefault();
      remember(form.elements.token.value);
      show(form.action, "GET");
    } else if (stored()) {
      event.preventDefault();
      show((event.submitter && event.submitter.formAction) || form.action, "POST");
    }
  }
  // The page replaces itself with document.write: one listener, however often this runs.
  document.removeEventListener("submit", window.reloadMiddlewareSubmit);
  window.reloadMiddlewareSubmit = submitted;
  document.addEventListener("submit", submitted);
  // The link the server logged carries the credential in the fragment, which no browser sends.
  // A page without details asks the admin endpoint for them, with the credential, once per
  // address and window (a wrong credential must not loop).
  function takeFragment() {
    const fragment = new URLSearchParams(location.hash.slice(1)).get("token");
    if (fragment) {
      remember(fragment);
      history.replaceState(null, "", location.pathname + location.search);
      window.reloadMiddlewareAsked = null;  // a credential just given: worth one more try
    }
    const page = document.getElementById("reload-middleware");
    if (!page || page.dataset.full !== "no" || !stored() || window.reloadMiddlewareAsked === location.href) return;
    window.reloadMiddlewareAsked = location.href;
    show(page.dataset.details, "GET");
  }
  // Also when the link is pasted into a tab that already shows this page (only the hash changes).
  window.removeEventListener("hashchange", window.reloadMiddlewareFragment);
  window.reloadMiddlewareFragment = takeFragment;
  window.addEventListener("hashchange", takeFragment);
  takeFragment();
})();
"""


def _document(title: str, body: str, *, full: bool = True, details: str = "") -> str:
    """A page; ``details``: where its full version is (for a page shown without them)."""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main id='reload-middleware' data-full='{'yes' if full else 'no'}' "
        f"data-details='{html.escape(details, quote=True)}'>{body}</main>"
        f"<script>{_SCRIPT}</script></body></html>"
    )


def status_page(status: Mapping[str, Any], admin_path: str, *, full: bool = True) -> str:
    """The status for people; ``full=False`` for a client without the credential: no error
    details, and a way to give the credential instead of the reload buttons."""
    path = html.escape(admin_path, quote=True)
    rows = "".join(
        f"<tr><td>{v['number']}</td><td>{html.escape(v['state'])}</td><td>{v['in_flight']}</td></tr>"
        for v in status["versions"]
    )
    parts = [
        f"<h1>Serving version {status['version']}</h1>",
        f"<p class='muted'>{_count(status['reloads'], 'reload')}, {status['failures']} failed; "
        f"{status['tracked_modules']} modules tracked; watching files: {'yes' if status['watching'] else 'no'}</p>",
        _reload_buttons(path) if full else _credential_form(path),
        "<h2>Live versions</h2><table><tr><th>version</th><th>state</th><th>requests in flight</th></tr>"
        f"{rows}</table>",
        _limits(status.get("limits") or {}),
    ]
    last = status.get("last_reload")
    if last:
        when = time.strftime("%H:%M:%S", time.localtime(last["time"]))
        parts.append(
            f"<h2>Last reload</h2><p class='ok'>{when}: {_what_changed(last['changed'])}; "
            f"{len(last['modules'])} modules reloaded in {last['duration_ms']:.1f} ms, version {last['version']}.</p>"
            f"<p class='muted'>{html.escape(', '.join(last['modules']))}</p>"
        )
    else:
        parts.append("<h2>Last reload</h2><p class='muted'>None yet.</p>")
    error = status.get("last_error")
    if error and not full:
        parts.append(
            f"<div class='error'><h2>Last error</h2><p><b>{html.escape(error['type'])}</b>"
            f"{' (resolved since)' if error.get('resolved') else ''}; the details need the credential.</p></div>"
        )
    elif error:
        where = f" at {_location(error)}" if error.get("file") else ""
        parts.append(
            f"<div class='error'><h2>Last error</h2><p><b>{html.escape(error['type'])}</b>: "
            f"{html.escape(error['message'])}{where}</p><pre>{html.escape(error['traceback'])}</pre></div>"
        )
    leaked = status.get("leaked_versions") or []
    if leaked:
        parts.append(f"<h2>Leaked versions</h2><pre>{html.escape(json.dumps(leaked, indent=2))}</pre>")
    return _document(f"reload_middleware: version {status['version']}", "".join(parts), full=full, details=admin_path)


def _reload_buttons(path: str) -> str:
    return (
        f"<form method='post' action='{path}'>"
        "<button class='primary' type='submit'>Reload now</button>"
        f"<button type='submit' formaction='{path}?force=1'>Reload everything</button></form>"
    )


def _credential_form(path: str) -> str:
    return (
        "<p class='muted'>Reloading and error details need a credential: open the status-page link the server "
        "logged at start (it carries this user's local credential), run <code>reload-middleware trigger URL</code>, "
        f"or enter the token.</p>{_token_form(path)}"
    )


def _token_form(path: str) -> str:
    # POST, so that a browser without script never puts the token into a URL (the server then
    # refuses the body); the page's script sends it as a header instead.
    return (
        f"<form id='login' method='post' action='{path}'><input type='password' name='token' autocomplete='off' "
        "placeholder='token' required> <button class='primary' type='submit'>Open</button></form>"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _limits(limits: Mapping[str, Any]) -> str:
    """What ``build_timeout`` and the drain do, in a few words, with this server's figures."""
    if not limits:
        return ""
    return (
        "<h2>Limits</h2><p class='muted'>"
        f"A build may take {limits['build_timeout']:g} s (<code>build_timeout</code>): past that it is stopped, "
        "the old version serves on, and a request never waits longer than that for a new version. "
        f"Before a build, new requests wait up to {limits['drain']:g} s (<code>drain_timeout</code>, at most "
        "half of <code>build_timeout</code>) while the old version's requests are still being computed; "
        "longer ones (a long-poll), uploads, streamed responses and websockets never hold a swap back, they "
        "finish on their own version. "
        f"At most {limits['max_versions']} versions live at once.</p>"
    )


def _what_changed(changed: list[str]) -> str:
    return f"{html.escape(', '.join(changed))} changed" if changed else "a forced reload of every module"


def error_page(error: Mapping[str, Any], admin_path: str, *, full: bool = True) -> str:
    """What a browser gets while the latest reload has failed: what to fix, where (``full``), or
    only that it failed and where to look (no credential: a secret may stand on the failing line)."""
    path = html.escape(admin_path, quote=True)
    if not full:
        return _document(
            "Reload failed",
            f"<div class='error'><h1>Reload failed: {html.escape(error['type'])}</h1></div>"
            "<p class='muted'>The latest edit could not be loaded; the previous version keeps serving API "
            f"clients. The file, line and traceback are on the <a href='{path}'>status page</a> for the developer: "
            "open the link the server logged at start, then refresh this page.</p>",
            full=False,
            details=f"{admin_path}?{ERROR_PAGE_QUERY}",
        )
    where = ""
    if error.get("file"):
        where = f"<p>{_location(error, bold_file=True)}</p>{_excerpt(error)}"
    return _document(
        f"Reload failed: {error['type']}",
        f"<div class='error'><h1>Reload failed: {html.escape(error['type'])}</h1>"
        f"<p>{html.escape(error['message'])}</p>{where}</div>"
        "<p class='muted'>The previous version keeps serving API clients. Fix the file and refresh this page; "
        f"the <a href='{path}'>status page</a> has the details.</p>"
        f"<h2>Traceback</h2><pre>{html.escape(error['traceback'])}</pre>",
    )


def error_summary(error: Mapping[str, Any]) -> str:
    """One header-safe line for API clients: the error's type and message."""
    text = f"{error['type']}: {error['message']}"
    # Only printable characters: a control character (an ANSI colour code in a message) makes
    # servers reject the header, and the old version's answer with it.
    line = " ".join("".join(c if c.isprintable() else " " for c in text).split())[:200]
    return line.encode("latin-1", "replace").decode("latin-1")


def _location(error: Mapping[str, Any], *, bold_file: bool = False) -> str:
    """``file, line N``, escaped whatever their types."""
    file = html.escape(str(error["file"]))
    return f"{f'<b>{file}</b>' if bold_file else file}, line {html.escape(str(error.get('line')))}"


def _excerpt(error: Mapping[str, Any]) -> str:
    """The lines around the failing one, read from the file as it is now."""
    line = error.get("line")
    if type(line) is not int:
        return ""
    try:
        with open(error["file"], encoding="utf-8", errors="replace") as file:
            lines = file.read().splitlines()
    except (OSError, TypeError, ValueError):
        return ""
    if not 1 <= line <= len(lines):
        return ""
    numbered = [
        f"{'>' if number == line else ' '} {number:4} | {lines[number - 1]}"
        for number in range(max(1, line - 3), min(len(lines), line + 3) + 1)
    ]
    return f"<pre>{html.escape(chr(10).join(numbered))}</pre>"


def login_page(admin_path: str) -> str:
    path = html.escape(admin_path, quote=True)
    return _document(
        "reload_middleware: token required",
        "<h1>Token required</h1><p class='muted'>This server sets RELOAD_MIDDLEWARE_TOKEN. The token is kept in "
        f"this tab only and sent as <code>Authorization: Bearer</code>.</p>{_token_form(path)}",
    )

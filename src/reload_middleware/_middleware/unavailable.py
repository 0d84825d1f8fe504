"""What answers while the app has never imported (watch mode, a broken file at start): a 500 that
names the error, for ASGI and for WSGI. Browsers get the error page before this is reached (the
failure is the pipeline's, as any failed reload's), and API answers carry ``x-reload-error``.

The details (file, line, traceback) are not here: the error page and the status show them to
those allowed to see them.
"""

from __future__ import annotations

from collections.abc import Iterable

from .._types import ASGIApp, Environ, Receive, Scope, Send, StartResponse, WSGIApp


def _explanation(error: str) -> bytes:
    return (
        f"The app could not be imported ({error}). It is served as soon as its files are fixed; "
        "the server keeps watching them.\n"
    ).encode()


def unavailable_asgi(error: str) -> ASGIApp:
    body = _explanation(error)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1011})
        else:
            headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": body})

    return app


def unavailable_wsgi(error: str) -> WSGIApp:
    body = _explanation(error)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app

"""Run uvicorn on a socket the test already bound, so the port is known before the server starts.

Usage: python tests/serve.py FD IMPORT_STRING [uvicorn option=value ...]
"""

from __future__ import annotations

import contextlib
import socket
import sys

import uvicorn
from uvicorn.supervisors import Multiprocess


def main() -> None:
    fd, import_string, *options = sys.argv[1:]
    settings: dict[str, object] = {"log_level": "info", "lifespan": "auto"}
    for option in options:
        key, _, value = option.partition("=")
        settings[key] = int(value) if value.isdigit() else value
    sock = socket.socket(fileno=int(fd))  # family and type come from the descriptor itself
    config = uvicorn.Config(import_string, **settings)  # type: ignore[arg-type]
    # uvicorn re-raises the signal it handled; `uvicorn.run` swallows it the same way.
    with contextlib.suppress(KeyboardInterrupt):
        if config.workers > 1:
            Multiprocess(config, sockets=[sock]).run()  # what `uvicorn --workers N` runs
        else:
            uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()

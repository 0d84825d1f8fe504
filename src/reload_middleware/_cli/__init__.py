"""The command line: ``reload-middleware APP [options]`` serves, ``reload-middleware trigger URL`` reloads.

``trigger`` imports no server module (no uvicorn, no click, no pipeline): only its own client.
Only this package prints to the terminal or exits.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["trigger"]:
        from . import trigger

        return trigger.main(arguments[1:])
    from . import serve

    return serve.main(arguments)


__all__ = ["main"]

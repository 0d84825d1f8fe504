"""The leaf module: edit GREETING while `make demo` runs and refresh the page."""

from __future__ import annotations

GREETING = "Hello"


def greet(name: str) -> str:
    return f"{GREETING}, {name}!"

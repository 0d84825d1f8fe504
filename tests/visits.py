"""A long-lived request for in-process tests of versions: a visit that records being closed."""

from __future__ import annotations

from reload_middleware._pipeline import AppVersion, Visit


class LongLived(Visit):
    """A streamed response or a websocket, as its version sees it; ``close()`` ends it."""

    __slots__ = ("closed",)

    def __init__(self, serving: AppVersion) -> None:
        self.closed = False
        super().__init__(serving, streaming=True)
        self.long_lived = True

    def close(self) -> None:
        self.closed = True
        self.end()

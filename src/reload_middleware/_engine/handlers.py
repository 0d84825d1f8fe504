"""Logging handlers and filters a module adds at import (``addHandler``, ``basicConfig()``,
``dictConfig()``), as effects of that module.

``dictConfig()`` disables every logger it does not name (``disable_existing_loggers``): ours are
enabled again after each import, so that the reload lines always reach the server's log.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

_OWN_LOGGER = __name__.split(".")[0]


@dataclass(frozen=True)
class Added:
    """``item`` (a handler or a filter) added to ``target`` (a logger, or a handler for a filter)."""

    target: Any
    item: Any

    def undo(self) -> None:
        if isinstance(self.item, logging.Handler):
            self.target.removeHandler(self.item)
        else:
            self.target.removeFilter(self.item)

    def redo(self) -> None:
        if isinstance(self.item, logging.Handler):
            self.target.addHandler(self.item)
        else:
            self.target.addFilter(self.item)


def install(note: Callable[[Added, FrameType | None], bool]) -> None:
    """Wrap ``Logger.addHandler`` and ``Filterer.addFilter`` so that each addition is noted."""
    add_handler, add_filter = logging.Logger.addHandler, logging.Filterer.addFilter

    def recorded_add_handler(self: logging.Logger, handler: logging.Handler) -> None:
        if handler not in self.handlers:
            note(Added(self, handler), sys._getframe(1))
        add_handler(self, handler)

    def recorded_add_filter(self: logging.Filterer, filter: Any) -> None:
        if filter not in self.filters:
            note(Added(self, filter), sys._getframe(1))
        add_filter(self, filter)

    logging.Logger.addHandler = recorded_add_handler  # type: ignore[method-assign,assignment]
    logging.Filterer.addFilter = recorded_add_filter  # type: ignore[method-assign]


def enable_own_loggers() -> None:
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if (name == _OWN_LOGGER or name.startswith(_OWN_LOGGER + ".")) and isinstance(logger, logging.Logger):
            logger.disabled = False

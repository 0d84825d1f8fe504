"""The service layer between routes and models."""

from __future__ import annotations

from example_app.models import Item


class Catalog:
    """Built once per app version by the lifespan, and kept in its state."""

    def __init__(self) -> None:
        self._items = [Item("tea", 350), Item("cake", 420)]

    def items(self) -> list[Item]:
        return list(self._items)

"""The model layer, imported elsewhere with `from example_app.models import Item`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    name: str
    price_cents: int

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "price": f"{self.price_cents / 100:.2f}"}

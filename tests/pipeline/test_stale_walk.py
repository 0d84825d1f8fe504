"""The stale walk itself, in-process: what it reads and what it reports (the reload answers that
use it are tested through real servers in ``tests/e2e/test_stale.py``)."""

from __future__ import annotations

import types
from typing import Any

from reload_middleware._pipeline.stale import find_stale


class _Hostile:
    """Like Flask's ``request`` outside a request: every attribute read raises."""

    def __getattribute__(self, name: str) -> Any:
        raise RuntimeError(f"working outside of request context ({name})")


def test_the_check_reads_no_attribute_an_object_computes() -> None:
    old = types.ModuleType("pkg.plugin")
    exec("def handler():\n    return 1\n", vars(old))
    registry = types.ModuleType("pkg.registry")
    vars(registry).update(request=_Hostile(), HANDLERS=[_Hostile(), old.handler])
    chain = find_stale(object(), {"pkg.registry": registry}, {"pkg.plugin": old}, lambda name: name.startswith("pkg"))
    assert chain == "pkg.registry.HANDLERS -> function pkg.plugin.handler (replaced)"

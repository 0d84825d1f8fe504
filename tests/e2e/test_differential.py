"""The differential oracle: after every random edit, the reloaded app serves exactly what a fresh
interpreter importing the same sources computes, or, when a fresh import fails, the reload fails
too and the last good version serves on.

Seeded and reproducible. A failure names its seed; replay it with
``DIFFERENTIAL_SEEDS=<seed> pytest tests/test_differential.py``. Minimal cases it found are kept in
``test_differential_regressions.py``.
"""

from __future__ import annotations

import copy
import os
import random
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from apps import SEMANTIC_MAIN, STARLETTE_APP
from differential import Tree, generate, random_edit
from harness import AppTree, ServerFactory, fresh_report

SEEDS = [int(seed) for seed in os.environ.get("DIFFERENTIAL_SEEDS", "1,2,3,4").split(",")]
STEPS = int(os.environ.get("DIFFERENTIAL_STEPS", "60"))


def importable_tree(rng: random.Random, package: str) -> Tree:
    """Draw trees until one imports: a cycle through a `from` import can fail, as it would for people."""
    for _ in range(50):
        model = generate(rng)
        with tempfile.TemporaryDirectory() as scratch:
            for relative, source in model.files(package).items():
                path = Path(scratch, package, relative)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(source)
            if fresh_report(Path(scratch), package) is not None:
                return model
    raise AssertionError("no importable tree in 50 draws")


def write_changes(tree: AppTree, model: Tree, written: dict[str, str]) -> None:
    for relative, source in model.files(tree.name).items():
        if written.get(relative) != source:
            tree.write(relative, source)
            written[relative] = source


@pytest.mark.parametrize("seed", SEEDS)
def test_reloaded_app_serves_what_a_fresh_interpreter_computes(seed: int, tree: AppTree, serve: ServerFactory) -> None:
    rng = random.Random(seed)
    model = importable_tree(rng, tree.name)
    written: dict[str, str] = {}
    write_changes(tree, model, written)
    tree.write("main.py", SEMANTIC_MAIN)
    tree.write("asgi.py", STARLETTE_APP["asgi.py"])
    last_good = fresh_report(tree.root, tree.name)
    assert last_good is not None, f"seed {seed}: the generated tree does not import"
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})  # one POST per step: every step is checked
    assert server.client.get("/").json() == last_good

    history: list[str] = []
    outcomes: Counter[str] = Counter()
    good_model = copy.deepcopy(model)
    broken = False
    for step in range(STEPS):
        if broken:
            # As people do, undo what broke the import rather than pile more edits on top.
            model = copy.deepcopy(good_model)
            history.append("revert to the last good tree")
        else:
            history.append(random_edit(rng, model))
        write_changes(tree, model, written)
        expected = fresh_report(tree.root, tree.name)
        answer = server.client.post("/__reload").json()
        served = server.client.get("/").json()
        where = f"seed {seed}, step {step}, last edits {history[-4:]}"
        broken = expected is None
        if expected is None:
            assert answer["ok"] is False, f"{where}: a fresh import fails, the reload did not"
            assert served == last_good, f"{where}: the last good version must serve on"
            outcomes["failed"] += 1
        else:
            assert answer["ok"] is True, f"{where}: a fresh import works, the reload failed: {answer['error']}"
            assert served == expected, f"{where}: served != fresh"
            outcomes["reloaded" if answer["reloaded"] else "unchanged"] += 1
            last_good = expected
            good_model = copy.deepcopy(model)
    assert outcomes["reloaded"] >= STEPS // 2, outcomes

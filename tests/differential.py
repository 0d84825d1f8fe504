"""Random module trees and random edits for the differential test.

A `Tree` is a model of a package: modules with constants, functions, classes and imports (some
of them cycles), rendered to source. `Edit`s change the model the way people change code:
values, names added and removed, imports added and removed, new files, a syntax error or an
exception at import that a later edit repairs. Everything is drawn from one `random.Random`, so a
seed replays exactly.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

REPORT = """
import importlib

{imports}

NAMES = {names!r}


def _safe(call):
    try:
        return call()
    except Exception as exc:
        return "error:" + type(exc).__name__


def _module_report(module):
    out = {{"names": sorted(n for n in vars(module) if not n.startswith("_"))}}
    for name in out["names"]:
        value = getattr(module, name)
        if name.startswith("f_"):
            out[name] = _safe(value)
        elif name.startswith("K_"):
            out[name] = _safe(lambda: [value.val, value().get()])
        elif name.startswith("C_"):
            out[name] = value
    return out


def report():
    package = __name__.rpartition(".")[0]
    return {{name: _safe(lambda: _module_report(importlib.import_module(package + "." + name))) for name in NAMES}}
"""


@dataclass
class Module:
    name: str  # relative to the package: "m3" or "sub.m5"
    consts: dict[str, int] = field(default_factory=dict)
    funcs: dict[str, str] = field(default_factory=dict)  # name -> expression
    classes: dict[str, int] = field(default_factory=dict)
    imports: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, target, name)
    broken: str | None = None  # "syntax" or "raise"

    def source(self, package: str) -> str:
        lines = []
        for kind, target, name in self.imports:
            if kind == "from":
                lines.append(f"from {package}.{target} import {name}")
            else:
                lines.append(f"import {package}.{target} as {name}")
        lines += [f"{name} = {value}" for name, value in self.consts.items()]
        for name, value in self.classes.items():
            lines += [f"class {name}:", f"    val = {value}", "    def get(self):", f"        return {value} * 2"]
        for name, expression in self.funcs.items():
            lines += [f"def {name}():", f"    return {expression}"]
        if self.broken == "syntax":
            lines.append("def broken(:")
        elif self.broken == "raise":
            lines.append("raise RuntimeError('broken at import')")
        return "\n".join(lines) + "\n"

    def path(self) -> str:
        return self.name.replace(".", "/") + ".py"


@dataclass
class Tree:
    modules: dict[str, Module]
    counter: int = 0

    def fresh_name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def files(self, package: str) -> dict[str, str]:
        files = {"__init__.py": "", "sub/__init__.py": "SUB_FLAG = 1\n"}
        for module in self.modules.values():
            files[module.path()] = module.source(package)
        names = sorted(self.modules)
        imports = "\n".join(f"import {package}.{name}" for name in names)
        files["report.py"] = REPORT.format(imports=imports, names=names)
        return files

    def bound_names(self, module: Module) -> list[str]:
        """Names a function of ``module`` can use: its own constants and its from-imports."""
        own = list(module.consts)
        imported = [name for kind, _, name in module.imports if kind == "from"]
        return own + imported

    def expression(self, rng: random.Random, module: Module) -> str:
        terms = [str(rng.randint(0, 9))]
        names = self.bound_names(module)
        terms += rng.sample(names, min(len(names), rng.randint(0, 2)))
        aliases = [(target, name) for kind, target, name in module.imports if kind == "module"]
        for target, alias in rng.sample(aliases, min(len(aliases), rng.randint(0, 1))):
            consts = list(self.modules[target].consts) if target in self.modules else []
            if consts:
                terms.append(f"{alias}.{rng.choice(consts)}")
        return " + ".join(terms)


def generate(rng: random.Random) -> Tree:
    tree = Tree({})
    count = rng.randint(4, 7)
    for index in range(count):
        name = f"m{index}" if rng.random() < 0.7 else f"sub.m{index}"
        module = Module(name)
        for _ in range(rng.randint(1, 3)):
            module.consts[tree.fresh_name("C_")] = rng.randint(0, 99)
        tree.modules[name] = module
    names = list(tree.modules)
    for index, name in enumerate(names):
        module = tree.modules[name]
        # `from` imports only from earlier modules (a fresh import must work); module imports anywhere,
        # which makes cycles.
        for target in rng.sample(names[:index], min(index, rng.randint(0, 2))):
            module.imports.append(("from", target, rng.choice(list(tree.modules[target].consts))))
        if rng.random() < 0.4:
            target = rng.choice(names)
            if target != name:
                module.imports.append(("module", target, f"{target.replace('.', '_')}_mod"))
        for _ in range(rng.randint(1, 2)):
            module.funcs[tree.fresh_name("f_")] = tree.expression(rng, module)
        if rng.random() < 0.5:
            module.classes[tree.fresh_name("K_")] = rng.randint(0, 9)
    return tree


Edit = Callable[[random.Random, Tree], str]


def change_value(rng: random.Random, tree: Tree) -> str:
    module = rng.choice(list(tree.modules.values()))
    if module.consts:
        name = rng.choice(list(module.consts))
        module.consts[name] = rng.randint(0, 99)
        return f"{module.name}: {name} = {module.consts[name]}"
    return add_name(rng, tree)


def change_function(rng: random.Random, tree: Tree) -> str:
    module = rng.choice(list(tree.modules.values()))
    name = rng.choice(list(module.funcs)) if module.funcs else tree.fresh_name("f_")
    module.funcs[name] = tree.expression(rng, module)
    return f"{module.name}: {name} returns {module.funcs[name]}"


def add_name(rng: random.Random, tree: Tree) -> str:
    module = rng.choice(list(tree.modules.values()))
    kind = rng.choice(["C_", "f_", "K_"])
    name = tree.fresh_name(kind)
    if kind == "C_":
        module.consts[name] = rng.randint(0, 99)
    elif kind == "f_":
        module.funcs[name] = tree.expression(rng, module)
    else:
        module.classes[name] = rng.randint(0, 9)
    return f"{module.name}: add {name}"


def remove_name(rng: random.Random, tree: Tree) -> str:
    module = rng.choice(list(tree.modules.values()))
    pools: list[dict[str, int] | dict[str, str]] = [p for p in (module.consts, module.funcs, module.classes) if p]
    if not pools:
        return add_name(rng, tree)
    pool = rng.choice(pools)
    name = rng.choice(list(pool))
    del pool[name]
    return f"{module.name}: remove {name}"


def add_import(rng: random.Random, tree: Tree) -> str:
    module = rng.choice(list(tree.modules.values()))
    target = rng.choice([name for name in tree.modules if name != module.name] or [module.name])
    if target == module.name:
        return change_value(rng, tree)
    if rng.random() < 0.5 and tree.modules[target].consts:
        module.imports.append(("from", target, rng.choice(list(tree.modules[target].consts))))
    else:
        module.imports.append(("module", target, f"{target.replace('.', '_')}_mod"))
    return f"{module.name}: import {module.imports[-1]}"


def remove_import(rng: random.Random, tree: Tree) -> str:
    module = rng.choice(list(tree.modules.values()))
    if not module.imports:
        return add_import(rng, tree)
    removed = module.imports.pop(rng.randrange(len(module.imports)))
    return f"{module.name}: drop import {removed}"


def add_file(rng: random.Random, tree: Tree) -> str:
    name = tree.fresh_name("new_m") if rng.random() < 0.7 else tree.fresh_name("sub.new_m")
    module = Module(name, consts={tree.fresh_name("C_"): rng.randint(0, 99)})
    module.funcs[tree.fresh_name("f_")] = tree.expression(rng, module)
    tree.modules[name] = module
    importer = rng.choice([other for other in tree.modules.values() if other.name != name])
    importer.imports.append(("from", name, next(iter(module.consts))))
    return f"new file {name}, imported by {importer.name}"


def break_module(rng: random.Random, tree: Tree) -> str:
    module = rng.choice(list(tree.modules.values()))
    module.broken = rng.choice(["syntax", "raise"])
    return f"{module.name}: broken ({module.broken})"


EDITS: list[tuple[Edit, int]] = [
    (change_value, 6),
    (change_function, 4),
    (add_name, 3),
    (remove_name, 3),
    (add_import, 2),
    (remove_import, 2),
    (add_file, 1),
    (break_module, 1),
]


def random_edit(rng: random.Random, tree: Tree) -> str:
    """Apply one edit; a broken module is always repaired by the next edit, as people do."""
    for module in tree.modules.values():
        if module.broken:
            module.broken = None
            return f"{module.name}: repaired"
    edits, weights = zip(*EDITS, strict=True)
    edit: Edit = rng.choices(edits, weights)[0]
    return edit(rng, tree)

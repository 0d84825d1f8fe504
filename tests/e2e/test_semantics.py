"""Exact reload semantics for the hard cases, each checked through a real server.

Every case is what a fresh interpreter importing the same sources would compute; `importlib.reload`
gets each of them wrong.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from apps import write_semantic_app
from harness import AppTree, Server, ServerFactory, wait_until


def serves(server: Server, expected: Any) -> None:
    wait_until(lambda: server.client.get("/").json() == expected)


def failed(server: Server, count: int = 1) -> dict[str, Any]:
    wait_until(lambda: server.status()["failures"] == count)
    error: dict[str, Any] = server.status()["last_error"]
    return error


def test_a_cycle_inside_a_package_reloads_as_one_group(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(
        tree,
        {
            "a.py": "from PKG import b\nNAME = 'a1'\n\ndef pair():\n    return NAME + '+' + b.NAME\n",
            "b.py": "from PKG import a\nNAME = 'b1'\n\ndef pair():\n    return NAME + '+' + a.NAME\n",
            "report.py": "from PKG import a, b\n\ndef report():\n    return [a.pair(), b.pair()]\n",
        },
    )
    server = serve()
    assert server.client.get("/").json() == ["a1+b1", "b1+a1"]
    tree.write("b.py", "from PKG import a\nNAME = 'b2'\n\ndef pair():\n    return NAME + '+' + a.NAME\n")
    serves(server, ["a1+b2", "b2+a1"])
    tree.write("a.py", "from PKG import b\nNAME = 'a3'\n\ndef pair():\n    return NAME + '+' + b.NAME\n")
    serves(server, ["a3+b2", "b2+a3"])
    assert set(server.status()["last_reload"]["modules"]) >= {f"{tree.name}.a", f"{tree.name}.b"}


def test_a_cycle_across_packages_reloads_as_one_group(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(
        tree,
        {
            "x/__init__.py": "",
            "y/__init__.py": "",
            "x/m.py": "import PKG.y.n as n\nVALUE = 1\n\ndef total():\n    return VALUE + n.VALUE\n",
            "y/n.py": "import PKG.x.m as m\nVALUE = 10\n\ndef total():\n    return VALUE + m.VALUE\n",
            "report.py": (
                "from PKG.x import m\nfrom PKG.y import n\n\n\ndef report():\n    return [m.total(), n.total()]\n"
            ),
        },
    )
    server = serve()
    assert server.client.get("/").json() == [11, 11]
    tree.write("y/n.py", "import PKG.x.m as m\nVALUE = 20\n\ndef total():\n    return VALUE + m.VALUE\n")
    serves(server, [21, 21])
    tree.write("x/m.py", "import PKG.y.n as n\nVALUE = 2\n\ndef total():\n    return VALUE + n.VALUE\n")
    serves(server, [22, 22])


def test_every_import_form_sees_the_new_objects_and_removed_names_are_gone(tree: AppTree, serve: ServerFactory) -> None:
    consts = "VALUE = {value}\n{extra}"
    write_semantic_app(
        tree,
        {
            "lib/__init__.py": "",
            "lib/consts.py": consts.format(value=1, extra="OLD_NAME = 'still here'\n"),
            "report.py": """
                import PKG.lib.consts
                import PKG.lib.consts as aliased
                from PKG.lib import consts
                from PKG.lib.consts import VALUE


                def report():
                    chain = PKG.lib.consts
                    return {
                        "from": VALUE,
                        "alias": aliased.VALUE,
                        "module": consts.VALUE,
                        "chain": chain.VALUE,
                        "old_name": hasattr(consts, "OLD_NAME"),
                    }
            """,
        },
    )
    server = serve()
    assert server.client.get("/").json() == {"from": 1, "alias": 1, "module": 1, "chain": 1, "old_name": True}
    tree.write("lib/consts.py", consts.format(value=2, extra=""))
    serves(server, {"from": 2, "alias": 2, "module": 2, "chain": 2, "old_name": False})


def test_objects_built_by_the_new_version_are_instances_of_the_new_classes(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(
        tree,
        {
            "models.py": "class Thing:\n    kind = 'one'\n",
            "factory.py": "from PKG.models import Thing\n\ndef make():\n    return Thing()\n",
            "report.py": """
                from PKG import models
                from PKG.factory import make
                from PKG.models import Thing


                def report():
                    made = make()
                    return [made.kind, isinstance(made, Thing), isinstance(made, models.Thing)]
            """,
        },
    )
    server = serve()
    assert server.client.get("/").json() == ["one", True, True]
    tree.write("models.py", "class Thing:\n    kind = 'two'\n")
    serves(server, ["two", True, True])


def test_package_init_and_relative_imports(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(
        tree,
        {
            "sub/__init__.py": "FLAG = 'init1'\n",
            "sub/consts.py": "VALUE = 'c1'\n",
            "sub/user.py": "from . import FLAG\nfrom .consts import VALUE\n\ndef both():\n    return FLAG + VALUE\n",
            "report.py": "from PKG.sub.user import both\n\ndef report():\n    return both()\n",
        },
    )
    server = serve()
    assert server.client.get("/").json() == "init1c1"
    tree.write("sub/__init__.py", "FLAG = 'init2'\n")
    serves(server, "init2c1")
    tree.write("sub/consts.py", "VALUE = 'c2'\n")
    serves(server, "init2c2")


def test_a_new_module_imported_by_an_edited_one_is_found(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(tree, {"report.py": "def report():\n    return 'no helper'\n"})
    server = serve()
    tree.write("helper.py", "HELP = 'from a new file'\n")
    tree.write("report.py", "from PKG.helper import HELP\n\ndef report():\n    return HELP\n")
    serves(server, "from a new file")
    tree.write("helper.py", "HELP = 'and it is tracked'\n")
    serves(server, "and it is tracked")


def test_a_deleted_module_still_imported_fails_cleanly(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(
        tree,
        {
            "gone.py": "VALUE = 'here'\n",
            "report.py": "from PKG.gone import VALUE\n\ndef report():\n    return VALUE\n",
        },
    )
    server = serve()
    before = server.client.get("/modules").json()
    os.unlink(tree.path("gone.py"))
    error = failed(server)
    assert error["type"] == "ModuleNotFoundError"
    assert f"{tree.name}.gone" in error["message"]
    assert server.client.get("/").json() == "here"
    assert server.client.get("/modules").json() == before


def test_a_rename_works_once_the_importers_are_updated(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(
        tree,
        {
            "old_name.py": "VALUE = 'renamed module'\n",
            "report.py": "from PKG.old_name import VALUE\n\ndef report():\n    return VALUE\n",
        },
    )
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})  # the two steps of a rename land together
    os.replace(tree.path("old_name.py"), tree.path("new_name.py"))
    tree.write("report.py", "from PKG.new_name import VALUE\n\ndef report():\n    return VALUE\n")
    answer = server.client.post("/__reload").json()
    assert answer["ok"] is True, answer
    assert server.client.get("/").json() == "renamed module"
    assert f"{tree.name}.old_name" not in server.client.get("/modules").json()["modules"]


def test_same_size_saves_within_one_second_are_both_served_with_bytecode_on(
    tree: AppTree, serve: ServerFactory
) -> None:
    write_semantic_app(tree, {"leaf.py": "VALUE = 'aa'\n", "report.py": SIMPLE_REPORT})
    server = serve()
    leaf = tree.path("leaf.py")
    pyc = tree.path("__pycache__")
    wait_until(lambda: any(name.startswith("leaf.") for name in os.listdir(pyc)))  # bytecode was written
    same_second = leaf.stat().st_mtime_ns
    for value in ("bb", "cc"):
        tree.write("leaf.py", f"VALUE = '{value}'\n")
        os.utime(leaf, ns=(same_second, same_second))  # what a fast second save looks like
        serves(server, value)


SIMPLE_REPORT = "from PKG.leaf import VALUE\n\ndef report():\n    return VALUE\n"


def _failing_group_app(tree: AppTree) -> None:
    write_semantic_app(
        tree,
        {
            "pkg/__init__.py": "",
            "pkg/first.py": "from PKG.pkg.leaf import VALUE\nFIRST = VALUE\n",
            "pkg/second.py": "from PKG.pkg.first import FIRST\nSECOND = FIRST\n",
            "pkg/leaf.py": "VALUE = 1\n",
            "report.py": "from PKG.pkg.second import SECOND\n\ndef report():\n    return SECOND\n",
        },
    )


BREAKAGES = [
    ("pkg/leaf.py", "VALUE = 2\ndef broken(:\n", "SyntaxError", 2),
    ("pkg/second.py", "from PKG.pkg.first import FIRST\nraise RuntimeError('half-way')\n", "RuntimeError", 2),
    ("pkg/second.py", "from PKG.pkg.first import MISSING\n", "ImportError", 1),
]


def test_a_failure_anywhere_in_the_group_leaves_sys_modules_exactly_as_before(
    tree: AppTree, serve: ServerFactory
) -> None:
    _failing_group_app(tree)
    # Manual mode: both saves go into one attempt. Watching, a loaded machine can deliver them to
    # two attempts, the first of which may already read the broken file: two failures for one.
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    before = server.client.get("/modules").json()
    for count, (relative, source, kind, line) in enumerate(BREAKAGES, start=1):
        tree.write("pkg/leaf.py", "VALUE = 2\n")  # a good edit in the same group, lost with the bad one
        tree.write(relative, source)
        assert server.client.post("/__reload").json()["ok"] is False
        error = failed(server, count)
        assert (error["type"], error["file"], error["line"]) == (kind, str(tree.path(relative)), line)
        assert server.client.get("/modules").json() == before  # same keys, same objects, same parents
        assert server.client.get("/").json() == 1
        _failing_group_app(tree)  # repaired: back to the sources the old version was built from
        # Settled before the next breakage: the repair is what was loaded, so nothing reloads.
        assert server.client.post("/__reload").json()["reloaded"] == []
    tree.write("pkg/leaf.py", "VALUE = 3\n")
    assert server.client.post("/__reload").json()["ok"] is True
    serves(server, 3)


def test_dynamic_and_lazy_imports_pick_up_new_code(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(
        tree,
        {
            "plugins/__init__.py": "",
            "plugins/alpha.py": "NAME = 'alpha1'\n",
            "lazy.py": "VALUE = 'lazy1'\n",
            "report.py": """
                import importlib


                def report():
                    from PKG import lazy

                    plugin = importlib.import_module(__name__.rpartition(".")[0] + ".plugins." + "alpha")
                    return [lazy.VALUE, plugin.NAME]
            """,
        },
    )
    server = serve()
    assert server.client.get("/").json() == ["lazy1", "alpha1"]
    tree.write("lazy.py", "VALUE = 'lazy2'\n")
    serves(server, ["lazy2", "alpha1"])
    tree.write("plugins/alpha.py", "NAME = 'alpha2'\n")
    serves(server, ["lazy2", "alpha2"])


def test_a_lazily_imported_module_broken_then_fixed_is_served(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(
        tree,
        {
            "lazy.py": "VALUE = 'lazy1'\n",
            "report.py": "def report():\n    from PKG import lazy\n\n    return lazy.VALUE\n",
        },
    )
    server = serve()
    assert server.client.get("/").json() == "lazy1"  # imported now, after start: not yet tracked
    tree.write("lazy.py", "VALUE = 'lazy2'\ndef broken(:\n")
    failed(server)
    assert server.client.get("/").json() == "lazy1"
    tree.write("lazy.py", "VALUE = 'lazy3'\n")
    serves(server, "lazy3")
    tree.write("lazy.py", "VALUE = 'lazy4'\n")
    serves(server, "lazy4")


def test_code_outside_the_watched_directories_is_never_reloaded(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(tree, {"report.py": "import outside_lib\n\ndef report():\n    return outside_lib.VALUE\n"})
    # Another directory on sys.path, outside the project root (which holds the app's package).
    elsewhere = tree.root.parent / f"elsewhere_{tree.name}"
    elsewhere.mkdir()
    (elsewhere / "outside_lib.py").write_text("VALUE = 'outside1'\n")
    server = serve(env={"PYTHONPATH": f"{tree.root}{os.pathsep}{elsewhere}"})
    assert server.client.get("/").json() == "outside1"
    (elsewhere / "outside_lib.py").write_text("VALUE = 'outside2'\n")
    time.sleep(0.5)
    assert server.client.post("/__reload").json()["reloaded"] == []
    assert server.client.get("/").json() == "outside1"
    assert server.status()["version"] == 1


def test_a_module_that_declares_itself_not_reloadable_needs_a_restart(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(
        tree,
        {
            "pinned.py": "__reloadable__ = False\nVALUE = 'pinned1'\n",
            "report.py": "from PKG.pinned import VALUE\n\ndef report():\n    return VALUE\n",
        },
    )
    server = serve()
    tree.write("pinned.py", "__reloadable__ = False\nVALUE = 'pinned2'\n")
    error = failed(server)
    assert error["type"] == "RestartRequired"
    assert "restart the server" in error["message"]
    assert f"{tree.name}.pinned" in error["message"]
    assert server.client.get("/").json() == "pinned1"


def test_an_edited_c_extension_needs_a_restart(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(tree, {"report.py": "from PKG import native\n\ndef report():\n    return native.answer()\n"})
    build_extension(tree, "native", 41)
    server = serve()
    assert server.client.get("/").json() == 41
    build_extension(tree, "native", 42)
    error = failed(server)
    assert error["type"] == "RestartRequired"
    assert "extension module" in error["message"]
    assert server.client.get("/").json() == 41


def build_extension(tree: AppTree, name: str, answer: int) -> None:
    """Compile a one-function C extension into the package (gcc and the Python headers are there)."""
    import subprocess
    import sysconfig

    source = tree.root / f"{name}.c"
    source.write_text(
        f"""
        #include <Python.h>
        static PyObject *answer(PyObject *self, PyObject *args) {{ return PyLong_FromLong({answer}); }}
        static PyMethodDef methods[] = {{{{"answer", answer, METH_NOARGS, NULL}}, {{NULL, NULL, 0, NULL}}}};
        static struct PyModuleDef module = {{PyModuleDef_HEAD_INIT, "{name}", NULL, -1, methods}};
        PyMODINIT_FUNC PyInit_{name}(void) {{ return PyModule_Create(&module); }}
        """
    )
    target = tree.path(name + str(sysconfig.get_config_var("EXT_SUFFIX")))
    temporary = target.with_name(f".{target.name}.building")
    include = sysconfig.get_paths()["include"]
    subprocess.run(
        ["gcc", "-shared", "-fPIC", f"-I{include}", str(source), "-o", str(temporary)], check=True, timeout=120
    )
    os.replace(temporary, target)


def test_keep_hands_an_object_to_the_next_version(tree: AppTree, serve: ServerFactory) -> None:
    counter = """
        from reload_middleware import keep

        hits = keep("hits", lambda: {{"count": 0}})
        LABEL = "{label}"


        def report():
            hits["count"] += 1
            return [LABEL, hits["count"]]
    """
    write_semantic_app(tree, {"report.py": counter.format(label="one")})
    server = serve()
    assert server.client.get("/").json() == ["one", 1]
    assert server.client.get("/").json() == ["one", 2]
    tree.write("report.py", counter.format(label="two"))
    wait_until(lambda: server.client.get("/").json()[0] == "two")
    assert server.client.get("/").json()[1] > 3  # the count went on from the old version's object


def test_on_retire_undoes_import_time_side_effects(tree: AppTree, serve: ServerFactory) -> None:
    module = """
        import logging

        from reload_middleware import on_retire

        handler = logging.NullHandler()
        logging.getLogger("semantics.test").addHandler(handler)
        on_retire(lambda: logging.getLogger("semantics.test").removeHandler(handler))
        GENERATION = {generation}


        def report():
            return [GENERATION, len(logging.getLogger("semantics.test").handlers)]
    """
    write_semantic_app(tree, {"report.py": module.format(generation=0)})
    server = serve()
    assert server.client.get("/").json() == [0, 1]
    for generation in range(1, 21):
        tree.write("report.py", module.format(generation=generation))
        wait_until(lambda: server.client.get("/").json()[0] == generation)  # noqa: B023
    wait_until(lambda: server.client.get("/").json() == [20, 1])


PLUGIN = "from PKG.registry import HANDLERS\n\n\ndef handler():\n    return '{version}'\n\n\nHANDLERS.append(handler)\n"


def test_a_retired_version_still_referenced_is_reported_with_its_holder(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(
        tree,
        {
            "registry.py": "HANDLERS = []\n",
            "plugin.py": PLUGIN.format(version="v1"),
            "report.py": "from PKG import plugin, registry\n\n\ndef report():\n    return [h() for h in registry.HANDLERS]\n",  # noqa: E501
        },
    )
    server = serve()
    assert server.status()["leaked_versions"] == []
    tree.write("plugin.py", PLUGIN.format(version="v2"))
    serves(server, ["v1", "v2"])  # the registry in an unchanged module kept the old handler
    leaked = wait_until(lambda: server.status()["leaked_versions"], timeout=15)
    assert leaked[0]["number"] == 1
    assert f"{tree.name}.plugin" in leaked[0]["modules"]
    assert leaked[0]["held_by"].startswith(f"{tree.name}.registry.HANDLERS -> list -> function {tree.name}.plugin")
    assert "still referenced" in server.log()


# Datasette registers an atexit callback per app instance; each used to hold its version alive.
WITH_EXIT_CALLBACK = SIMPLE_REPORT + "\n\nimport atexit\n\natexit.register(lambda: report())\n"


@pytest.mark.parametrize("report", [SIMPLE_REPORT, WITH_EXIT_CALLBACK], ids=["plain", "with-atexit-callback"])
def test_a_clean_app_leaks_no_version(tree: AppTree, serve: ServerFactory, report: str) -> None:
    write_semantic_app(tree, {"leaf.py": "VALUE = 0\n", "report.py": report})
    server = serve()
    for value in range(1, 4):
        tree.write("leaf.py", f"VALUE = {value}\n")
        serves(server, value)
    time.sleep(2.5)  # the leak check runs 2 s after the last retirement
    assert server.status()["leaked_versions"] == []
    assert "still referenced" not in server.log()


def test_a_save_caught_half_written_is_served_once_complete(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(tree, {"leaf.py": "VALUE = 'first'\n", "report.py": SIMPLE_REPORT})
    server = serve()
    leaf = tree.path("leaf.py")
    with open(leaf, "w") as file:  # an editor that writes in place: truncate, pause, write
        file.flush()
        time.sleep(0.3)
        file.write("VALUE = 'second'\n")
    serves(server, "second")


def test_a_plugin_loaded_by_name_reloads_the_module_that_loaded_it(tree: AppTree, serve: ServerFactory) -> None:
    # Datasette's pattern: a registry imports plugins by name and keeps the first module it got.
    write_semantic_app(
        tree,
        {
            "plugins/__init__.py": "",
            "plugins/greeter.py": "def greet():\n    return 'hello from plugin 1'\n",
            "registry.py": """
                import importlib

                PLUGINS = {}


                def load(name):
                    return PLUGINS.setdefault(name, importlib.import_module(name))
            """,
            "report.py": """
                from PKG import registry

                greeter = registry.load("PKG.plugins.greeter")


                def report():
                    return greeter.greet()
            """,
        },
    )
    server = serve()
    assert server.client.get("/").json() == "hello from plugin 1"
    tree.write("plugins/greeter.py", "def greet():\n    return 'hello from plugin 2'\n")
    wait_until(lambda: server.status()["reloads"] == 1)
    assert server.client.get("/").json() == "hello from plugin 2"  # never the old plugin, reported ok
    assert f"{tree.name}.registry" in server.status()["last_reload"]["modules"]

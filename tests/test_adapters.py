"""Framework adapters against the real packages: registries outside the group give up what the
group's modules declared, and get it back on a rollback."""

from __future__ import annotations

from apps import write_semantic_app
from harness import AppTree, ServerFactory, wait_until

PLUGGY_APP = {
    "hooks.py": """
        import pluggy

        hookspec = pluggy.HookspecMarker("demo")
        hookimpl = pluggy.HookimplMarker("demo")


        class Spec:
            @hookspec
            def greet(self):
                ...


        pm = pluggy.PluginManager("demo")
        pm.add_hookspecs(Spec)
    """,
    "plugins/__init__.py": "",
    "report.py": """
        import PKG.plugins.greeter
        from PKG.hooks import pm


        def report():
            return pm.hook.greet()
    """,
}


def greeter(text: str, *, then_fail: bool = False) -> str:
    """A plugin module that registers itself at import, by name."""
    failure = "\nraise RuntimeError('broken after registering')\n" if then_fail else ""
    return f"""
import sys

from PKG.hooks import hookimpl, pm


@hookimpl
def greet():
    return {text!r}


pm.register(sys.modules[__name__], name="greeter")
{failure}"""


def test_a_pluggy_plugin_that_registers_itself_reloads(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(tree, {**PLUGGY_APP, "plugins/greeter.py": greeter("hello 1")})
    server = serve()
    assert server.client.get("/").json() == ["hello 1"]
    tree.write("plugins/greeter.py", greeter("hello 2"))
    wait_until(lambda: server.client.get("/").json() == ["hello 2"])
    assert server.status()["failures"] == 0


def test_a_failed_reload_of_a_pluggy_plugin_puts_the_old_one_back(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(tree, {**PLUGGY_APP, "plugins/greeter.py": greeter("hello 1")})
    server = serve()
    tree.write("plugins/greeter.py", greeter("hello 2", then_fail=True))
    wait_until(lambda: server.status()["failures"] == 1)
    assert server.client.get("/").json() == ["hello 1"]  # the old plugin, registered once
    tree.write("plugins/greeter.py", greeter("hello 3"))
    wait_until(lambda: server.client.get("/").json() == ["hello 3"])

"""Framework adapters against the real packages: registries outside the group give up what the
group's modules declared, and get it back on a rollback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from apps import write_semantic_app
from harness import AppTree, ServerFactory, fresh_report, wait_until

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"

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


def greeter(text: str, *, then_fail: bool = False, undo: bool = False) -> str:
    """A plugin module that registers itself at import, by name (and with ``undo``, unregisters
    that name when its version retires, as a registry's documentation would have it)."""
    failure = "\nraise RuntimeError('broken after registering')\n" if then_fail else ""
    hook = '\nfrom reload_middleware import on_retire\non_retire(lambda: pm.unregister(name="greeter"))\n'
    return f"""
import sys

from PKG.hooks import hookimpl, pm


@hookimpl
def greet():
    return {text!r}


pm.register(sys.modules[__name__], name="greeter")
{hook if undo else ""}{failure}"""


def test_a_pluggy_plugin_that_registers_itself_reloads(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(tree, {**PLUGGY_APP, "plugins/greeter.py": greeter("hello 1")})
    server = serve()
    assert server.client.get("/").json() == ["hello 1"]
    tree.write("plugins/greeter.py", greeter("hello 2"))
    wait_until(lambda: server.client.get("/").json() == ["hello 2"])
    assert server.status()["failures"] == 0


def test_an_old_versions_hook_never_unregisters_the_new_versions_plugin(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(tree, {**PLUGGY_APP, "plugins/greeter.py": greeter("hello 1", undo=True)})
    server = serve(env={"RELOAD_MIDDLEWARE_WATCH": "0"})
    for version in (2, 3):
        tree.write("plugins/greeter.py", greeter(f"hello {version}", undo=True))
        assert server.client.post("/__reload").json()["ok"] is True
        expected = fresh_report(tree.root, tree.name)
        assert expected == [f"hello {version}"]
        assert server.client.get("/").json() == expected
    assert server.status()["failures"] == 0
    assert "registered again" in server.log()


def test_a_failed_reload_of_a_pluggy_plugin_puts_the_old_one_back(tree: AppTree, serve: ServerFactory) -> None:
    write_semantic_app(tree, {**PLUGGY_APP, "plugins/greeter.py": greeter("hello 1")})
    server = serve()
    tree.write("plugins/greeter.py", greeter("hello 2", then_fail=True))
    wait_until(lambda: server.status()["failures"] == 1)
    assert server.client.get("/").json() == ["hello 1"]  # the old plugin, registered once
    tree.write("plugins/greeter.py", greeter("hello 3"))
    wait_until(lambda: server.client.get("/").json() == ["hello 3"])


# A declarative base in a module of its own that no model edit touches: the models' tables stay in
# its MetaData across reloads unless the adapter takes them out.
SQLALCHEMY_APP = {
    "db.py": """
        from sqlalchemy.orm import DeclarativeBase


        class Base(DeclarativeBase):
            pass
    """,
    "report.py": """
        from sqlalchemy import create_engine, select
        from sqlalchemy.orm import Session

        from PKG.db import Base
        from PKG.models import Hero


        def report():
            engine = create_engine("sqlite://")
            Base.metadata.create_all(engine)
            with Session(engine) as session:
                session.add(Hero(name="Deadpond"))
                session.commit()
                hero = session.scalars(select(Hero)).one()
                row = {column.name: getattr(hero, column.name) for column in Hero.__table__.columns}
            return {"tables": sorted(Base.metadata.tables), "hero": row}
    """,
}


def sqlalchemy_models(power: str | None, *, then_fail: bool = False) -> str:
    extra = f"    power: Mapped[str] = mapped_column(default={power!r})\n" if power else ""
    failure = "\nraise RuntimeError('broken after declaring')\n" if then_fail else ""
    return f"""
from sqlalchemy import Column, ForeignKey, Integer, Table
from sqlalchemy.orm import Mapped, mapped_column

from PKG.db import Base

team_members = Table(
    "team_members", Base.metadata, Column("hero_id", Integer, ForeignKey("hero.id"), primary_key=True)
)


class Hero(Base):
    __tablename__ = "hero"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
{extra}{failure}"""


SQLMODEL_APP = {
    "report.py": """
        from sqlalchemy import create_engine
        from sqlmodel import Session, SQLModel, select

        from PKG.models import Hero


        def report():
            engine = create_engine("sqlite://")
            SQLModel.metadata.create_all(engine)
            with Session(engine) as session:
                session.add(Hero(name="Deadpond"))
                session.commit()
                hero = session.exec(select(Hero)).one()
                row = hero.model_dump()
            tables = sorted(name for name in SQLModel.metadata.tables if name.startswith("hero"))
            return {"tables": tables, "hero": row}
    """,
}


def sqlmodel_models(power: str | None) -> str:
    extra = f"    power: str = {power!r}\n" if power else ""
    return f"""
from sqlmodel import Field, SQLModel


class Hero(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str
{extra}"""


@pytest.mark.parametrize(
    ("files", "models"),
    [(SQLALCHEMY_APP, sqlalchemy_models), (SQLMODEL_APP, sqlmodel_models)],
    ids=["sqlalchemy", "sqlmodel"],
)
def test_an_edited_orm_model_is_served_as_a_fresh_process_would(
    tree: AppTree, serve: ServerFactory, files: dict[str, str], models: Callable[[str | None], str]
) -> None:
    write_semantic_app(tree, {**files, "models.py": models(None)})
    server = serve()
    assert server.client.get("/").json() == fresh_report(tree.root, tree.name)
    tree.write("models.py", models("flight"))
    served = wait_until(lambda: (body := server.client.get("/").json())["hero"].get("power") and body)
    assert served == fresh_report(tree.root, tree.name)
    assert served["hero"]["power"] == "flight"
    tree.write("models.py", models("speed"))  # and again: the second version's tables leave too
    wait_until(lambda: server.client.get("/").json()["hero"].get("power") == "speed")
    assert server.status()["failures"] == 0
    assert "Warning" not in server.log()


def test_a_failed_reload_of_an_orm_model_puts_the_old_tables_and_mappers_back(
    tree: AppTree, serve: ServerFactory
) -> None:
    write_semantic_app(tree, {**SQLALCHEMY_APP, "models.py": sqlalchemy_models(None)})
    server = serve()
    before = server.client.get("/").json()
    tree.write("models.py", sqlalchemy_models("flight", then_fail=True))
    wait_until(lambda: server.status()["failures"] == 1)
    assert server.client.get("/").json() == before  # the old Hero, mapped, in its old table
    tree.write("models.py", sqlalchemy_models("speed"))
    served = wait_until(lambda: (body := server.client.get("/").json())["hero"].get("power") and body)
    assert served == fresh_report(tree.root, tree.name)
    assert "Warning" not in server.log()


def test_the_benchmark_apps_orm_model_edit_reloads(tree: AppTree, serve: ServerFactory) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from generate import PACKAGE, generate, orm_source, write
    finally:
        sys.path.remove(str(BENCHMARKS))
    package = generate(tree.root, 20)
    server = serve(f"{PACKAGE}.asgi:app")
    assert server.client.get("/orders/columns").json() == ["id", "customer_id", "label"]
    write(package / "orm.py", orm_source("note"))
    wait_until(lambda: server.client.get("/orders/columns").json() == ["id", "customer_id", "note"])
    assert server.status()["failures"] == 0

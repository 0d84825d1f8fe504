"""Generate a realistic FastAPI app of about N modules for the benchmarks.

Layout of package ``bench_app``: ``deps`` imports numpy, SQLAlchemy and pydantic at start (the
libraries a restart pays for again), ``db`` holds a shared SQLAlchemy ``Base`` and ``orm`` the
tables declared on it, ``common`` is imported by every model (the "module imported by many"),
``leaf`` by one router only, and the rest is split into pydantic models, a service layer (with an
import cycle) and routers.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

PACKAGE = "bench_app"


def write(path: Path, source: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.saving")
    temporary.write_text(textwrap.dedent(source).lstrip())
    temporary.replace(path)


def generate(root: Path, modules: int) -> Path:
    """Write the app under ``root``; returns the package directory."""
    package = root / PACKAGE
    groups = max(1, (modules - 8) // 3)
    for sub in ("", "models", "services", "routers"):
        write(package / sub / "__init__.py", "")
    write(
        package / "deps.py",
        """
        import numpy
        import pydantic
        import sqlalchemy

        VERSIONS = {"numpy": numpy.__version__, "pydantic": pydantic.VERSION, "sqlalchemy": sqlalchemy.__version__}
        """,
    )
    write(
        package / "db.py",
        """
        from sqlalchemy.orm import declarative_base

        Base = declarative_base()
        """,
    )
    write(package / "orm.py", orm_source("label"))
    write(package / "common.py", "PREFIX = 'p0'\nPAGE_SIZE = 20\n")
    write(package / "leaf.py", "MESSAGE = 'v0'\n")
    for index in range(groups):
        write(
            package / "models" / f"m{index}.py",
            f"""
            from pydantic import BaseModel

            from {PACKAGE}.common import PAGE_SIZE, PREFIX


            class Item{index}(BaseModel):
                name: str = PREFIX + "-{index}"
                size: int = PAGE_SIZE
                weight: float = {index}.5
            """,
        )
        # s0 and s1 import each other: a cycle that must reload as one group.
        partner = f"from {PACKAGE}.services import s{index ^ 1} as partner" if index < 2 and groups > 1 else ""
        write(
            package / "services" / f"s{index}.py",
            "\n".join(
                [
                    "import numpy",
                    "",
                    partner,
                    f"from {PACKAGE}.models.m{index} import Item{index}",
                    "",
                    "",
                    f"def items(count: int = 3) -> list[Item{index}]:",
                    f"    return [Item{index}(size=int(value)) for value in numpy.arange(count)]",
                    "",
                ]
            ),
        )
        write(
            package / "routers" / f"r{index}.py",
            f"""
            from fastapi import APIRouter

            from {PACKAGE}.models.m{index} import Item{index}
            from {PACKAGE}.services.s{index} import items

            router = APIRouter()


            @router.get("/items/{index}")
            def list_items() -> list[Item{index}]:
                return items()
            """,
        )
    includes = "\n".join(f"from {PACKAGE}.routers.r{index} import router as r{index}" for index in range(groups))
    mounts = "\n".join(f"app.include_router(r{index})" for index in range(groups))
    write(
        package / "main.py",
        f"""
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, PlainTextResponse

from {PACKAGE} import deps, leaf, orm
{includes}

app = FastAPI()
{mounts}


@app.get("/leaf", response_class=PlainTextResponse)
def show_leaf() -> str:
    return leaf.MESSAGE


@app.get("/page", response_class=HTMLResponse)
def show_page() -> str:
    return f"<!doctype html><html><body><h1>{{leaf.MESSAGE}}</h1></body></html>"


@app.get("/orders/columns")
def order_columns() -> list[str]:
    return [column.name for column in orm.Order.__table__.columns]


@app.get("/ping", response_class=PlainTextResponse)
async def ping() -> str:
    return "pong"
""",
    )
    write(
        package / "asgi.py",
        f"""
        from reload_middleware import ReloadMiddleware

        app = ReloadMiddleware("{PACKAGE}.main:app")
        """,
    )
    write(
        package / "disabled.py",
        f"""
        from reload_middleware import ReloadMiddleware

        app = ReloadMiddleware("{PACKAGE}.main:app", enabled=False)
        """,
    )
    return package


def orm_source(column: str) -> str:
    """The ORM models module, its ``Order`` table with one column named ``column``."""
    return textwrap.dedent(
        f"""
        from sqlalchemy import Column, ForeignKey, Integer, String

        from {PACKAGE}.db import Base


        class Customer(Base):
            __tablename__ = "customer"
            id = Column(Integer, primary_key=True)
            name = Column(String(80))


        class Order(Base):
            __tablename__ = "order"
            id = Column(Integer, primary_key=True)
            customer_id = Column(Integer, ForeignKey("customer.id"))
            {column} = Column(String(80))
        """
    ).lstrip()


def count_modules(package: Path) -> int:
    return sum(1 for _ in package.rglob("*.py"))

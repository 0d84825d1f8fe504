"""What PyPI gets: the wheel and the sdist are built, their contents and metadata checked, and the
wheel installed into a new virtualenv runs the README's quick start outside the repository."""

from __future__ import annotations

import email.parser
import os
import re
import subprocess
import sys
import tarfile
import textwrap
import venv
import zipfile
from pathlib import Path

import httpx
import pytest
from harness import wait_until
from test_cli import free_port

from reload_middleware import __version__

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # Only the output directory is written to (the tree stays clean, as `make test` must leave it).
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def test_the_sdist_has_what_a_packager_needs_and_no_images(dist: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.partition("/")[2] for name in archive.getnames()}
    for needed in ("pyproject.toml", "README.md", "LICENSE", "src/reload_middleware/__init__.py"):
        assert needed in names
    assert Path(__file__).relative_to(ROOT).as_posix() in names  # this very test
    assert "benchmarks/generate.py" in names  # a test uses it
    assert not [name for name in names if name.endswith(".png")]
    assert not [name for name in names if name.startswith(".ci") or "__pycache__" in name]


def test_the_wheel_holds_the_package_and_complete_metadata(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = email.parser.Parser().parsestr(
            archive.read(f"reload_middleware-{__version__}.dist-info/METADATA").decode()
        )
        entry_points = archive.read(f"reload_middleware-{__version__}.dist-info/entry_points.txt").decode()
    assert "reload_middleware/py.typed" in names
    assert "reload_middleware/adapters/django.py" in names
    assert not [name for name in names if name.startswith(("tests/", "example_app/"))]
    assert "reload-middleware = reload_middleware._cli:main" in entry_points
    assert metadata["Version"] == __version__
    assert "ASGI or WSGI" in metadata["Summary"]
    assert metadata["License-Expression"] == "MIT"
    assert "hot-reload" in metadata["Keywords"]
    classifiers = metadata.get_all("Classifier") or []
    for classifier in ("Framework :: FastAPI", "Framework :: Flask", "Framework :: Django", "Typing :: Typed"):
        assert classifier in classifiers
    runtime = [r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert sorted(re.split(r"[<>=;\s]", requirement)[0] for requirement in runtime) == [
        "anyio",
        "click",
        "httpx",
        "typing-extensions",
        "uvicorn",
        "watchfiles",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_installed_wheel_runs_the_quick_start_outside_the_repository(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    # The wheel, and the framework the user's app is written with; nothing from this repository.
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel), "starlette"],
        check=True,
        timeout=600,
    )
    project = tmp_path / "project"
    (project / "myservice").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "greeting.py": "TEXT = 'hello 1'\n",
        "main.py": """
            from starlette.applications import Starlette
            from starlette.responses import PlainTextResponse
            from starlette.routing import Route

            from myservice import greeting


            async def home(request):
                return PlainTextResponse(greeting.TEXT)


            app = Starlette(routes=[Route("/", home)])
        """,
        "asgi.py": """
            from reload_middleware import reloadable

            app = reloadable("myservice.main:app")   # the plain app unless RELOAD_MIDDLEWARE=1
        """,
    }
    for name, source in files.items():
        (project / "myservice" / name).write_text(textwrap.dedent(source))
    version = subprocess.run(
        [str(environment / "bin" / "reload-middleware"), "--version"], capture_output=True, text=True, timeout=60
    )
    assert version.stdout.startswith(f"reload-middleware {__version__}")
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RELOAD_MIDDLEWARE", "PYTHON", "VIRTUAL_ENV"))}
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [str(environment / "bin" / "uvicorn"), "myservice.asgi:app", "--port", str(port)],
        cwd=project,
        env={**clean, "RELOAD_MIDDLEWARE": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}/"

        def answers(text: str) -> bool:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                return httpx.get(url, timeout=2).text == text
            except httpx.TransportError:
                return False

        wait_until(lambda: answers("hello 1"), timeout=30)
        saving = project / "myservice" / ".greeting.py.saving"
        saving.write_text("TEXT = 'hello 2'\n")
        saving.replace(project / "myservice" / "greeting.py")
        wait_until(lambda: answers("hello 2"), timeout=10)
        where = subprocess.run(
            [str(python), "-c", "import reload_middleware; print(reload_middleware.__file__)"],
            cwd=project,
            env=clean,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        assert where.startswith(str(environment))  # the installed wheel, not this repository's sources
    finally:
        server.terminate()
        server.wait(15)
        log.close()

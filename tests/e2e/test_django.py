"""Real Django, in a project made by ``django-admin startproject`` and ``startapp``, under uvicorn
(ASGI) and gunicorn (WSGI): edits of a view, a URLconf, a template, a model and an admin module are
served within a second, each answer as a fresh process on the same sources gives it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest
from harness import AppTree, Server, ServerFactory, fresh_get, wait_until
from test_wsgi import GUNICORN

VIEWS = """
from django.apps import apps
from django.contrib import admin
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render

from .models import Question


def index(request):
    return HttpResponse("{greeting}")


def page(request):
    return render(request, "polls/page.html", {{"who": "world"}})


def site(request):
    return render(request, "site.html")


def models(request):
    registered = admin.site._registry
    return JsonResponse(
        {{
            "fields": [field.name for field in Question._meta.get_fields()],
            "models": [model is Question for model in apps.get_app_config("polls").get_models()],
            "admin": [type(registered[model]).__name__ for model in registered if model is Question],
        }}
    )
"""

URLS = """
from django.urls import path

from . import views

urlpatterns = [
    path("", views.index),
    path("page/", views.page),
    path("models/", views.models),
    path("site/", views.site),{extra}
]
"""

MODELS = """
from django.db import models


class Question(models.Model):
    text = models.CharField(max_length=200){extra}
"""

ADMIN = """
from django.contrib import admin

from .models import Question


class {name}(admin.ModelAdmin):
    list_display = ["text"]


admin.site.register(Question, {name})
"""


def write_project(tree: AppTree) -> None:
    """``startproject`` and ``startapp`` as a developer runs them, then a ``polls`` app in use."""
    tree.path("").rmdir()  # startproject makes the project package itself
    for command in (["startproject", tree.name, "."], ["startapp", "polls"]):
        subprocess.run([sys.executable, "-m", "django", *command], cwd=tree.root, check=True, timeout=60)
    settings = tree.path("settings.py")
    source = settings.read_text().replace("INSTALLED_APPS = [", "INSTALLED_APPS = [\n    'polls',")
    settings.write_text(source.replace("'DIRS': [],", "'DIRS': [BASE_DIR / 'templates'],"))  # project templates
    urls = tree.path("urls.py")
    source = urls.read_text().replace("from django.urls import path", "from django.urls import include, path")
    urls.write_text(source.replace("urlpatterns = [", "urlpatterns = [\n    path('polls/', include('polls.urls')),"))
    app = AppTree(tree.root)  # writes into polls/ through the same atomic save
    app.name = "polls"
    app.write("views.py", VIEWS.format(greeting="hello 1"))
    app.write("urls.py", URLS.format(extra=""))
    app.write("models.py", MODELS.format(extra=""))
    app.write("admin.py", ADMIN.format(name="QuestionAdmin"))
    app.write("templates/polls/page.html", "<p>Hello {{ who }}, page 1</p>\n")
    (tree.root / "templates").mkdir()
    (tree.root / "templates" / "site.html").write_text("<p>site 1</p>\n")
    tree.write(
        "dev_asgi.py",
        "from reload_middleware import ReloadMiddleware\n\napp = ReloadMiddleware('PKG.asgi:application')\n",
    )
    tree.write(
        "dev_wsgi.py",
        "from reload_middleware import WSGIReloadMiddleware\n\napp = WSGIReloadMiddleware('PKG.wsgi:application')\n",
    )


def start_uvicorn(tree: AppTree, serve: ServerFactory) -> Server:
    return serve("PKG.dev_asgi:app")


def start_gunicorn(tree: AppTree, serve: ServerFactory) -> Server:
    return serve("PKG.dev_wsgi:app", command=GUNICORN)


@pytest.mark.parametrize("start", [start_uvicorn, start_gunicorn], ids=["uvicorn-asgi", "gunicorn-wsgi"])
def test_django_edits_are_served_as_a_fresh_process_serves_them(
    tree: AppTree, serve: ServerFactory, start: Callable[[AppTree, ServerFactory], Server]
) -> None:
    write_project(tree)
    app = AppTree(tree.root)
    app.name = "polls"
    server = start(tree, serve)
    fresh_app = f"{tree.name}.wsgi:application"

    def serves_as_fresh(path: str, expected: str) -> None:
        """``path`` soon answers with ``expected`` in it, and then exactly as a fresh process does."""
        wait_until(lambda: expected in server.client.get(path).text, timeout=5)
        response = server.client.get(path)
        assert (response.status_code, response.text) == fresh_get(tree.root, fresh_app, path)

    serves_as_fresh("/polls/", "hello 1")
    serves_as_fresh("/polls/models/", "QuestionAdmin")

    app.write("views.py", VIEWS.format(greeting="hello 2"))  # a view
    serves_as_fresh("/polls/", "hello 2")

    app.write("urls.py", URLS.format(extra='\n    path("extra/", views.index),'))  # a URLconf
    serves_as_fresh("/polls/extra/", "hello 2")

    app.write("templates/polls/page.html", "<p>Hello {{ who }}, page 2</p>\n")  # a template
    serves_as_fresh("/polls/page/", "page 2")
    site_template = tree.root / "templates" / "site.html"  # in the project's templates/ (settings' DIRS)
    site_template.with_name(".saving").write_text("<p>site 2</p>\n")
    site_template.with_name(".saving").replace(site_template)
    serves_as_fresh("/polls/site/", "site 2")

    app.write("models.py", MODELS.format(extra="\n    votes = models.IntegerField(default=0)"))  # a model
    serves_as_fresh("/polls/models/", "votes")
    assert server.client.get("/polls/models/").json()["models"] == [True]  # the new model, registered once

    before = server.client.get("/polls/models/").text  # a model edit that fails puts the old one back
    app.write("models.py", MODELS.format(extra="\n    broken = models.IntegerField()\n\nraise RuntimeError('no')"))
    wait_until(lambda: server.status()["failures"] == 1)
    assert server.client.get("/polls/models/").text == before
    app.write(
        "models.py",
        MODELS.format(extra="\n    votes = models.IntegerField(default=0)\n    hidden = models.BooleanField()"),
    )
    serves_as_fresh("/polls/models/", "hidden")

    app.write("admin.py", ADMIN.format(name="PollAdmin"))  # an admin registration
    serves_as_fresh("/polls/models/", "PollAdmin")

    settings = tree.path("settings.py")  # read once by Django, at start: a restart, said so
    saving = settings.with_name(".settings.saving")
    saving.write_text(settings.read_text() + "\nTIME_ZONE = 'Europe/Paris'\n")
    saving.replace(settings)
    reasons = wait_until(lambda: server.status()["restart_required"])
    assert reasons == [
        f"{tree.name}.settings ({settings}) changed: Django reads its settings once, at start: restart the server"
    ]

    status = server.status()
    assert (status["reloads"], status["failures"]) == (7, 2)  # the broken model, the settings
    assert status["last_error"]["type"] == "RestartRequired"
    assert server.client.get("/polls/").text == "hello 2"  # and the app serves on
    assert "already registered" not in server.log()

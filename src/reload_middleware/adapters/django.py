"""Django: its process-wide caches and registries, reset for the group.

- URL resolvers are cached (``get_resolver``), each holding the URLconf module it imported: the
  caches are cleared, and the root URLconf (which includes every app's) is re-executed with any
  group, so that it includes the new modules.
- Models register in the app registry at import; the group's models leave it first (else "Model
  'polls.question' was already registered", and the old model stays in relations and lookups).
- The admin site's registrations of the group's models and ``ModelAdmin`` classes leave it first
  (else "already registered"); the group's ``models`` and ``admin`` modules, which Django imported
  at its start and nothing imports again, are imported again after the app.
- Template loaders cache compiled templates: they are reset, so an edited template is read again.
- Settings are read once, at start: an edited settings module is reported as needing a restart.
A rollback puts every registration back.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Set
from types import ModuleType
from typing import Any

from . import declared_by

FRAMEWORK = "django"


def _ready() -> Any:
    """Django's app registry, if it is set up (else there is nothing to reset)."""
    from django.apps import apps

    return apps if apps.ready else None


def companions(group: Set[str]) -> set[str]:
    if _ready() is None:
        return set()
    from django.conf import settings

    urlconf = getattr(settings, "ROOT_URLCONF", None)
    return {urlconf} if isinstance(urlconf, str) else set()


def restart_reasons(changed: Set[str]) -> dict[str, str]:
    if _ready() is None:
        return {}
    from django.conf import settings

    module = getattr(settings, "SETTINGS_MODULE", None)
    if isinstance(module, str) and module in changed:
        return {module: "Django reads its settings once, at start: restart the server"}
    return {}


def imported_at_start(group: Set[str]) -> set[str]:
    apps = _ready()
    if apps is None:
        return set()
    names = (f"{config.name}.{part}" for config in apps.get_app_configs() for part in ("models", "admin"))
    return {name for name in names if name in group}


def committed() -> None:
    # A request of the old version that resolved its URL during the build cached a resolver of
    # the old (or a half-built) URLconf: the new version's requests must build their own.
    if _ready() is not None:
        from django.urls import clear_url_caches

        clear_url_caches()


def release(modules: Mapping[str, ModuleType]) -> Callable[[], None]:
    apps = _ready()
    if apps is None:
        return lambda: None
    released_models = [
        (label, name, model)
        for label, models in apps.all_models.items()
        for name, model in list(models.items())
        if declared_by(model, modules)
    ]
    for label, name, _ in released_models:
        del apps.all_models[label][name]
    admin_sites = _admin_sites()
    admin_registries = [(site, dict(site._registry)) for site in admin_sites]
    for site in admin_sites:
        for model, model_admin in list(site._registry.items()):
            if declared_by(model, modules) or declared_by(model_admin, modules):
                del site._registry[model]
    _reset_caches(apps)

    def undo() -> None:
        for label, name, model in released_models:
            apps.all_models[label][name] = model
        for site, registry in admin_registries:
            site._registry.clear()
            site._registry.update(registry)
        _reset_caches(apps)

    return undo


def _admin_sites() -> list[Any]:
    sites = sys.modules.get("django.contrib.admin.sites")
    return list(sites.all_sites) if sites is not None else []


def _reset_caches(apps: Any) -> None:
    from django.template.autoreload import reset_loaders
    from django.urls import clear_url_caches

    apps.clear_cache()
    clear_url_caches()
    reset_loaders()

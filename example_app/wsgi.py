"""What a WSGI server runs: `gunicorn example_app.wsgi:app`.

With RELOAD_MIDDLEWARE=1 this is the Flask app behind WSGIReloadMiddleware; without it, the plain
Flask app.
"""

from __future__ import annotations

from reload_middleware import reloadable

app = reloadable("example_app.flask_main:app")

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orderflow.settings.dev")
application = get_wsgi_application()

# Import the URLconf (and with it every view, serializer and contract module) now rather than on
# each worker's first request: with gunicorn's preload_app the workers fork with it loaded, so a
# recycled worker (max_requests) starts serving at once instead of spending a second importing.
# No connection is opened here (librdkafka, psycopg and redis clients are created lazily per
# process), so nothing unsafe crosses the fork.
from django.urls import get_resolver  # noqa: E402

_resolver = get_resolver()
_resolver.url_patterns  # noqa: B018 — evaluating the property performs the import
_resolver.reverse_dict  # noqa: B018 — and this builds reverse()'s tables, also once per worker otherwise


def _preload() -> None:
    """The same for what every worker would otherwise import on its first requests (seen as 4% of
    the web tier's CPU under load in the HTTP benchmark's profile, paid again by every recycled
    worker): the relay's modules, which a commit's relay kick imports, with Celery behind them;
    the JWT backend, which the first authenticated request loads; and the session and message
    stores of the middleware. Imports only: still no connection before the fork."""
    from importlib import import_module

    from django.conf import settings
    from django.utils.module_loading import import_string

    import_module("orderflow.messaging.tasks")
    import_module("rest_framework_simplejwt.state")
    import_module(settings.SESSION_ENGINE)
    import_string(settings.MESSAGE_STORAGE)


_preload()

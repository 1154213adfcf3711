"""URLs of this process: the hosted contexts' APIs, docs, admin, health and metrics."""

from importlib import import_module

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from orderflow import health, metrics

urlpatterns = [
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", metrics.view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]
for _context in settings.ORDERFLOW_CONTEXTS:
    _module = f"contexts.{_context}.urls"
    try:
        import_module(_module)
    except ModuleNotFoundError as exc:
        if exc.name != _module:
            raise
        continue
    urlpatterns.append(path("", include(_module)))

handler404 = "orderflow.problems.handler404"
handler500 = "orderflow.problems.handler500"

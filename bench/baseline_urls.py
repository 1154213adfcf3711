"""The project's URLs plus the HTTP benchmark's baseline: a trivial authenticated DRF endpoint.

`POST /bench/ping/` goes through the same gunicorn worker, middleware, JWT authentication and
JSON rendering as `POST /api/orders/`, and does nothing else: the difference between the two is
what placing an order costs.
"""

from django.urls import path
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from orderflow.urls import handler404, handler500  # noqa: F401
from orderflow.urls import urlpatterns as project_urlpatterns


class PingApi(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"ok": True})

    def post(self, request):
        return Response({"ok": True})


urlpatterns = [path("bench/ping/", PingApi.as_view(), name="bench-ping"), *project_urlpatterns]

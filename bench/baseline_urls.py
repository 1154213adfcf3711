"""The project's URLs plus the HTTP benchmark's two reference endpoints.

- `POST /bench/ping/`, the baseline: a trivial authenticated DRF endpoint. It goes through the same
  gunicorn worker, middleware, JWT authentication and JSON rendering as `POST /api/orders/` and
  does nothing else: the difference between the two is what placing an order costs.
- `POST /bench/floor-order/`, the floor: the least that any order endpoint keeping the API's
  promise must add to the baseline — the body validated (`plain_order_input`, the order view's own
  fast path) and one row committed to the orders database before answering (an order accepted
  with 202 must survive a crash). No prices, no domain object, no event, no read model, no relay.
  Whatever the real endpoint costs beyond this is the project's code; what this costs beyond the
  baseline is the platform's (Django's transaction, psycopg, PostgreSQL's commit).
"""

import json
import uuid

from django.db import connections, transaction
from django.urls import path
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.floor import FLOOR_TABLE
from contexts.orders.api import plain_order_input
from orderflow.auth import principal_id
from orderflow.urls import handler404, handler500  # noqa: F401
from orderflow.urls import urlpatterns as project_urlpatterns


class PingApi(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"ok": True})

    def post(self, request):
        return Response({"ok": True})


class FloorOrderApi(APIView):
    permission_classes = [IsAuthenticated]

    def post(self, request):
        validated = plain_order_input(request.data)
        if validated is None:
            raise ValidationError({"lines": ["not a plain order body"]})
        order_id = uuid.uuid4()
        with transaction.atomic(using="orders"), connections["orders"].cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {FLOOR_TABLE} (id, customer_id, body) VALUES (%s, %s, %s)",
                [order_id, principal_id(request), json.dumps(validated)],
            )
        return Response({"id": str(order_id)}, status=status.HTTP_202_ACCEPTED)


urlpatterns = [
    path("bench/ping/", PingApi.as_view(), name="bench-ping"),
    path("bench/floor-order/", FloorOrderApi.as_view(), name="bench-floor-order"),
    *project_urlpatterns,
]

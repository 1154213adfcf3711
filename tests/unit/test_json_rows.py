"""`bulk.json_rows`: the document batch statements read with json_to_recordset."""

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import models

from orderflow.messaging.bulk import json_rows


class Status(models.TextChoices):
    RESERVED = "RESERVED"


def test_rows_become_objects_with_postgres_readable_values():
    order_id = uuid.uuid4()
    at = datetime(2026, 12, 4, 2, 30, 15, 123456, tzinfo=UTC)
    document = json_rows(
        ("order_id", "status", "amount", "at", "lines", "name"),
        [(order_id, Status.RESERVED, Decimal("19.90"), at, [{"sku": "A-1", "quantity": 2}], "Crème")],
    )
    assert isinstance(document, str)
    assert json.loads(document) == [
        {
            "order_id": str(order_id),
            "status": "RESERVED",
            "amount": "19.90",  # a Decimal keeps its digits, as text
            "at": "2026-12-04T02:30:15.123456+00:00",
            "lines": [{"sku": "A-1", "quantity": 2}],
            "name": "Crème",
        }
    ]


def test_a_row_of_the_wrong_width_is_refused():
    with pytest.raises(ValueError):
        json_rows(("a", "b"), [(1,)])

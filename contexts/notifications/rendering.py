"""Subject and body of a notification: subject strings from the domain, bodies from templates."""

from __future__ import annotations

import uuid
from typing import Any

from django.template.loader import render_to_string

from contexts.notifications.domain import Kind, describe_reason, format_money, order_reference, subject_for


def render(*, kind: Kind, order_id: uuid.UUID, name: str, details: dict[str, Any]) -> tuple[str, str]:
    """`details` is the order event's data (validated by its contract)."""
    context: dict[str, Any] = {"name": name, "ref": order_reference(order_id), "order_id": str(order_id)}
    if "total" in details:
        context["total"] = format_money(details["total"])
    if "lines" in details:
        context["lines"] = [
            {"sku": line["sku"], "quantity": line["quantity"], "unit_price": format_money(line["unit_price"])}
            for line in details["lines"]
        ]
    if "reason" in details:
        context["reason"] = describe_reason(details["reason"])
    body = render_to_string(f"notifications/{kind.value}.txt", context).strip() + "\n"
    return subject_for(kind, order_id), body

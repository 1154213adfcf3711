"""Periodic work of the orders context (scheduled by orderflow/celery.py from PERIODIC)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from contexts.orders import services

log = logging.getLogger(__name__)


@shared_task(name="contexts.orders.tasks.cancel_overdue_orders", ignore_result=True)
def cancel_overdue_orders() -> int:
    """Cancel PENDING orders past the deadline (reason `timeout`); compensations follow from
    OrderCancelled like any other cancellation."""
    expired = services.orders_expire()
    if expired:
        log.info("cancelled %d overdue order(s)", expired)
    return expired


PERIODIC = [(settings.ORDERS_DEADLINE_CHECK_SECONDS, cancel_overdue_orders)]

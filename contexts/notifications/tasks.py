"""Periodic work of the notifications context (scheduled by orderflow/celery.py from PERIODIC)."""

from __future__ import annotations

import logging

from celery import shared_task

from contexts.notifications import services

log = logging.getLogger(__name__)

RETRY_EVERY_SECONDS = 15.0


@shared_task(name="contexts.notifications.tasks.deliver_due_notifications", ignore_result=True)
def deliver_due_notifications() -> int:
    """The safety net behind the post-commit send: a crash right after the commit, or a mail
    server that was down, leaves notifications addressed but unsent; send them now."""
    sent = services.notifications_deliver_due()
    if sent:
        log.info("sent %d overdue notification(s)", sent)
    return sent


PERIODIC = [(RETRY_EVERY_SECONDS, deliver_due_notifications)]

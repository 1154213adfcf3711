"""Relay the outbox rows a web request committed once its response has been sent.

A request that records an event (placing an order) used to kick the relay through Celery; the
kick's publish and the worker's dispatch cost several times the relay run itself (decision 21).
`RelayAfterResponseMiddleware` collects the contexts a request committed events to, and when the
WSGI server closes the response (Django's `request_finished`, after the body went out) the same
thread relays them: the client never waits for Kafka, and no task is queued. A run that fails or
may have left rows hands over to the Celery kick; beat's one-second run stays the safety net.
`WEB_RELAY_AFTER_RESPONSE=false` keeps the Celery kick for every commit.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.signals import request_finished

from orderflow.messaging import outbox

log = logging.getLogger(__name__)

# Contexts committed to by the request this thread has just answered (set by the middleware,
# taken by the request_finished receiver; both run in the thread that served the request).
_finished = threading.local()


class RelayAfterResponseMiddleware:
    def __init__(self, get_response) -> None:
        if not settings.WEB_RELAY_AFTER_RESPONSE:
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request):
        pending: set[str] = set()
        try:
            with outbox.relay_later(pending):
                return self.get_response(request)
        finally:
            _finished.contexts = pending


def relay_finished_request(**_kwargs) -> None:
    contexts = getattr(_finished, "contexts", None)
    _finished.contexts = None
    if not contexts:
        return
    from orderflow.messaging.tasks import kick, relay_here

    for context in sorted(contexts):
        if not relay_here(context):
            kick(context)


request_finished.connect(relay_finished_request, dispatch_uid="orderflow.relay_after_response")

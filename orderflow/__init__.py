"""OrderFlow project package: settings, URLs, the Celery app and the shared kernel."""

from orderflow.celery import app as celery_app

__all__ = ["celery_app"]

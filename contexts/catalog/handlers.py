"""Catalog consumes no events: it is the source of products and prices."""

SUBSCRIPTIONS: dict = {}

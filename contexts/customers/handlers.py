"""Customers consumes no events: it is the source of identity."""

SUBSCRIPTIONS: dict = {}

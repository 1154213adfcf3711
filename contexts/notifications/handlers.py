"""Subscriptions of the notifications context (its saga handlers arrive with the saga issue)."""

SUBSCRIPTIONS: dict = {}

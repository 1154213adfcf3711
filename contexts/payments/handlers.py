"""Subscriptions of the payments context (its saga handlers arrive with the saga issue)."""

SUBSCRIPTIONS: dict = {}

"""Shared fixtures. Components are real: `python -m orderflow.stack test` starts PostgreSQL, Redis
and the Kafka-protocol broker (or uses the ones the environment names) before pytest runs."""

from __future__ import annotations

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.api", "tests.fixtures.processes"]

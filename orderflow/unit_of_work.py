"""`transaction.atomic` for use cases: a savepoint only where one can be used.

A use case opens its own transaction (`unit_of_work(DB)`). Called by a consumer it is nested in
the consumer's transaction — the batch's, or one record's — and Django would wrap it in a
savepoint: SAVEPOINT and RELEASE, two more round trips per event for a savepoint nothing ever
rolls back to, because any failure there rolls the consumer's whole transaction back (and the
batch is then applied one record at a time). Inside `all_or_nothing` nested units therefore run
without one. A handler must not catch a nested unit's error and carry on: Django then refuses
every further query in the transaction, so it fails loudly instead of committing half a change.
Everywhere else (web requests, tasks, tests) `unit_of_work` is exactly `transaction.atomic`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import transaction

_whole: ContextVar[bool] = ContextVar("orderflow_all_or_nothing", default=False)


def unit_of_work(using: str) -> transaction.Atomic:
    return transaction.atomic(using=using, savepoint=not _whole.get())


@contextmanager
def all_or_nothing(using: str) -> Iterator[None]:
    """A transaction rolled back whole on any failure; units nested in it take no savepoint."""
    token = _whole.set(True)
    try:
        with transaction.atomic(using=using):
            yield
    finally:
        _whole.reset(token)

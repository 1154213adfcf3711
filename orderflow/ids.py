"""Random identifiers (event ids, trace and span ids) drawn without a system call.

`uuid.uuid4()` and `secrets` read the OS's random source once per id: a getrandom system call,
which also releases the GIL to the consumer's relay thread. A consumer batch of 500 events draws
500 event ids for its outbox rows; drawing them here cut the inventory consumer's CPU per event
by 5-13% in paired runs (the tenth round of docs/benchmarks.md). These ids only need to be
unique, not secret, so they come from a Mersenne Twister of this module's own: seeded from the
OS, reseeded in every forked child (gunicorn, Celery's pool), and out of reach of code that
seeds the global `random` (a test's `random.seed(0)` must never make two processes draw the
same event ids).
"""

from __future__ import annotations

import os
import random
import uuid

_generator = random.Random()  # seeded from os.urandom
os.register_at_fork(after_in_child=_generator.seed)


def random_bits(bits: int) -> int:
    """A uniformly drawn non-negative integer of `bits` bits."""
    return _generator.getrandbits(bits)


def uuid4() -> uuid.UUID:
    """A random (version 4) UUID: 122 random bits, as `uuid.uuid4()`, without its system call."""
    return uuid.UUID(int=_generator.getrandbits(128), version=4)

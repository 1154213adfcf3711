"""Event, trace and span ids: random, version 4, unaffected by the global `random`, new after fork."""

from __future__ import annotations

import os
import random
import uuid

from orderflow import ids, tracing


def test_event_ids_are_version_4_uuids_and_do_not_repeat():
    drawn = [ids.uuid4() for _ in range(20_000)]
    assert {u.version for u in drawn} == {4}
    assert {u.variant for u in drawn} == {uuid.RFC_4122}
    assert len(set(drawn)) == len(drawn)


def test_seeding_the_global_random_does_not_repeat_ids():
    random.seed(1234)
    first = ids.uuid4(), tracing.new_root()
    random.seed(1234)
    second = ids.uuid4(), tracing.new_root()
    assert first[0] != second[0]
    assert first[1].trace_id != second[1].trace_id
    assert first[1].correlation_id != second[1].correlation_id


def test_a_forked_child_draws_other_ids_than_its_parent():
    # One generator for event, trace and span ids: a child that kept its parent's state would draw
    # the parent's next ids (web workers and Celery's pool are forked).
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, back to the parent
        os.close(read)
        os.write(write, ids.uuid4().bytes)
        os._exit(0)
    os.close(write)
    child = uuid.UUID(bytes=os.read(read, 16))
    os.close(read)
    os.waitpid(pid, 0)
    assert child != ids.uuid4()

"""A whole stack of its own for the chaos tests (fresh databases and topics, see tests/e2e), with a
PENDING deadline long enough that killed processes alone never time an order out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Stack, running_stack
from tests.e2e.shop import Shop

DEADLINE_SECONDS = 120


@pytest.fixture(scope="module")
def chaos_stack(tmp_path_factory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("chaos-stack"),
        prefix="chaos",
        own_groups=True,  # other stacks may share the broker: their consumers must not join ours
        ORDERS_PENDING_DEADLINE_SECONDS=str(DEADLINE_SECONDS),
        ORDERS_DEADLINE_CHECK_SECONDS="2",
        PAYMENTS_SINGLE_PAYMENT_LIMIT="100000.00",
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def shop(chaos_stack) -> Shop:
    return Shop(chaos_stack, chaos_stack.http().login("admin@orderflow.local", "admin"))


@pytest.fixture(autouse=True)
def _show_stack_log_on_failure(request):
    """For tests that run on the chaos stack (only they start it)."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "chaos_stack" in request.fixturenames:
        stack = request.getfixturevalue("chaos_stack")
        print(f"--- last lines of the stack log ({stack.log}) ---\n{stack.log_tail(150)}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)

"""`e2e.overhead_floor_ms`: the overhead a service taking no time of its own would have on the same sends."""

from __future__ import annotations

import pytest

from bench.analysis import overhead_floor


def test_messages_far_apart_and_a_burst_wait_for_nothing() -> None:
    sent = [(1, 0.0), (1, 5.0), (2, 0.0), (2, 0.0)]  # customer 2: two messages at once, answered by one turn

    assert overhead_floor(sent, ai_latency_s=1.0) == [0.0, 0.0, 0.0, 0.0]


def test_a_message_during_its_customers_ai_call_waits_for_the_rest_of_it() -> None:
    # Customer 1 writes at 0; at 0.3 and 0.5 while that call runs; at 1.2, during the second call (1.0 → 2.0).
    sent = [(1, 0.0), (1, 0.3), (1, 0.5), (1, 1.2)]

    assert overhead_floor(sent, ai_latency_s=1.0) == pytest.approx([0.0, 0.7, 0.5, 0.8])


def test_customers_do_not_wait_for_one_another() -> None:
    sent = [(1, 0.0), (2, 0.1), (3, 0.2)]

    assert overhead_floor(sent, ai_latency_s=1.0) == [0.0, 0.0, 0.0]


def test_a_burst_sent_one_after_another_waits_for_its_first_messages_call() -> None:
    # What `overhead_floor_as_sent_ms` sees: the harness sends a burst's second message once the first is
    # answered, 5 ms later, and the first one's turn has started by then, even in a service taking no time.
    sent = [(1, 0.0), (1, 0.005)]

    assert overhead_floor(sent, ai_latency_s=1.0) == pytest.approx([0.0, 0.995])

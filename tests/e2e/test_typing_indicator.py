"""The whole system (gunicorn, worker, stand-in Graph): the read receipt of a turn carries the typing
indicator by default, and not with TYPING_INDICATOR=false."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.harness import System, wait_for
from tests.support.standin_graph import StandInGraph

pytestmark = pytest.mark.timeout(180)


def test_the_customer_sees_the_agent_typing_through_the_read_receipt(
    make_system: Callable[..., System], graph_standin: StandInGraph
) -> None:
    system = make_system()
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="1001")

    wamid = system.send_text(tenant, "15550001", "Hi, do you ship to Lisbon?")

    graph_standin.wait_for_sent(1, timeout=20)
    wait_for(lambda: len(graph_standin.reads) == 1, timeout=5, what="the read receipt")
    [read] = graph_standin.reads
    assert (read.message_id, read.typing) == (wamid, "text")


def test_typing_indicator_off_keeps_the_plain_read_receipt(
    make_system: Callable[..., System], graph_standin: StandInGraph
) -> None:
    system = make_system(TYPING_INDICATOR="false")
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="1001")

    wamid = system.send_text(tenant, "15550001", "Hi")

    graph_standin.wait_for_sent(1, timeout=20)
    wait_for(lambda: len(graph_standin.reads) == 1, timeout=5, what="the read receipt")
    [read] = graph_standin.reads
    assert (read.message_id, read.typing) == (wamid, None)

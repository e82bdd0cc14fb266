"""Retrying failed messages through the REST API on the running system (gunicorn, RQ workers, Postgres,
Redis, the OpenAI and Graph stand-ins): answered once and in order, sent exactly once more, and a
second retry does nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.harness import System, Tenant, wait_for
from tests.support.standin_graph import GraphFailure, StandInGraph
from tests.support.standin_openai import Failure, StandInOpenAI, echo_reply

pytestmark = pytest.mark.timeout(180)


def _retry(system: System, tenant: Tenant, message_id: int) -> dict[str, Any]:
    answer = system.api("POST", f"/users/{tenant.user_id}/messages/{message_id}/retry", tenant.api_key)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _inbound(system: System, tenant: Tenant) -> list[tuple[str, str]]:
    """(text, status) of the customer's messages, oldest first."""
    return [(m["text"], m["status"]) for m in reversed(system.messages(tenant, direction="inbound"))]


def _reply_attempts(graph: StandInGraph) -> list[str]:
    return [r.body["text"]["body"] for r in graph.requests if isinstance(r.body, dict) and r.body.get("type") == "text"]


def test_a_message_the_ai_refused_is_answered_once_and_in_order_after_a_retry(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    system = make_system(MARK_AS_READ="false")
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="9301")
    openai_standin.fail_next(Failure.bad_request("Invalid prompt: pmpt_9301 was not found."))
    system.send_text(tenant, "15550931", "first, refused")
    wait_for(lambda: _inbound(system, tenant) == [("first, refused", "failed")], timeout=30, what="the failure")
    [failed] = system.messages(tenant, status="failed")

    retried = _retry(system, tenant, failed["message_id"])

    assert (retried["retried"], retried["status"], retried["failure_reason"]) == (True, "received", None)
    graph_standin.wait_for_sent(1, timeout=30)
    system.send_text(tenant, "15550931", "second, after the retry")
    graph_standin.wait_for_sent(2, timeout=30)
    wait_for(
        lambda: [s for _, s in _inbound(system, tenant)] == ["answered", "answered"], timeout=10, what="both answered"
    )
    assert [m.text for m in graph_standin.sent] == [
        echo_reply(["first, refused"]),
        echo_reply(["second, after the retry"]),
    ]
    assert len(system.charges(tenant)) == 2  # the refused call was never charged

    again = _retry(system, tenant, failed["message_id"])

    assert (again["retried"], again["status"]) == (False, "answered")
    time.sleep(1.0)  # a second answer, if a retry had queued one, would have gone out by now
    assert len(graph_standin.sent) == 2
    assert len(openai_standin.calls("responses")) == 3


def test_a_reply_meta_refused_reaches_the_channel_exactly_once_more_after_a_retry(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    """MARK_AS_READ=false keeps the reply's send the only Graph call of the turn."""
    system = make_system(MARK_AS_READ="false")
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="9311")
    graph_standin.fail_next(GraphFailure.server_error())  # may have gone out: never sent again by the worker
    system.send_text(tenant, "15550932", "hello")
    wait_for(
        lambda: [m["status"] for m in system.messages(tenant, direction="outbound")] == ["failed"],
        timeout=30,
        what="the refused send stored",
    )
    [part] = system.messages(tenant, direction="outbound")
    assert part["failure_code"] == "131000"

    retried = _retry(system, tenant, part["message_id"])

    [sent] = graph_standin.sent
    assert (retried["retried"], retried["status"], retried["platform_message_id"]) == (True, "sent", sent.message_id)
    assert (retried["failure_code"], retried["failure_reason"]) == (None, None)
    assert sent.text == echo_reply(["hello"])

    again = _retry(system, tenant, part["message_id"])

    assert (again["retried"], again["status"]) == (False, "sent")
    assert _reply_attempts(graph_standin) == [echo_reply(["hello"])] * 2  # the refused attempt and the retry
    assert len(system.charges(tenant)) == 1  # a retried send is not charged again

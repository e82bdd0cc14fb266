"""RelinkAgent end to end (gunicorn, RQ workers, Postgres, Redis, stand-ins): the business moves a channel
to another agent while the old agent's AI call is under way. The customer gets exactly one reply, the
new agent's; the old conversation is archived with its history; one charge per answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.harness import System, Tenant, wait_for
from tests.support.standin_graph import StandInGraph
from tests.support.standin_openai import StandInOpenAI, echo_reply

pytestmark = pytest.mark.timeout(180)

CUSTOMER = "15550777"


def _messages(system: System, tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    return system.messages(tenant, **params)


def test_relink_during_the_ai_call_gives_the_customer_one_reply_from_the_new_agent(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    openai_standin.sign_with_prompt = True
    system = make_system()
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="7001")
    created = system.api(
        "POST", f"/users/{tenant.user_id}/agents", tenant.api_key, json={"name": "B", "prompt_id": "pmpt_b"}
    )
    assert created.status_code == 201, created.text
    agent_b = created.json()
    assert agent_b["phone_number_id"] is None

    system.send_text(tenant, CUSTOMER, "Hi")
    graph_standin.wait_for_sent(1, timeout=20)
    hold = openai_standin.hold()
    system.send_text(tenant, CUSTOMER, "Where is my order?")
    hold.wait_arrived(1, timeout=20)

    relinked = system.api(
        "PATCH",
        f"/users/{tenant.user_id}/agents/{agent_b['agent_id']}",
        tenant.api_key,
        json={"phone_number_id": "7001"},
    )
    assert relinked.status_code == 200, relinked.text
    hold.release()

    sent = graph_standin.wait_for_sent(2, timeout=30)
    assert [s.text for s in sent] == [
        "[pmpt_7001] " + echo_reply(["Hi"]),
        "[pmpt_b] " + echo_reply(["Where is my order?"]),
    ]
    first_call, held_call, b_call = openai_standin.calls("responses")
    assert held_call["prompt"]["id"] == "pmpt_7001" and b_call["prompt"]["id"] == "pmpt_b"
    assert b_call["conversation"] != first_call["conversation"]

    system.send_text(tenant, CUSTOMER, "Thanks")
    sent = graph_standin.wait_for_sent(3, timeout=30)
    assert sent[2].text == "[pmpt_b] " + echo_reply(["Thanks"])
    assert len(graph_standin.sent) == 3  # nothing else went out, the old agent's late answer least of all

    wait_for(lambda: len(_messages(system, tenant)) == 6, timeout=10, what="every message stored")
    messages = _messages(system, tenant)
    conversations = sorted({m["conversation_id"] for m in messages})
    assert len(conversations) == 2
    old, new = conversations
    old_history = _messages(system, tenant, conversation_id=old, order="sequence")
    assert [(m["direction"], m["text"]) for m in old_history] == [
        ("inbound", "Hi"),
        ("outbound", "[pmpt_7001] " + echo_reply(["Hi"])),
    ]
    new_history = _messages(system, tenant, conversation_id=new, order="sequence")
    assert [(m["sequence_no"], m["direction"], m["status"]) for m in new_history] == [
        (1, "inbound", "answered"),
        (2, "outbound", "sent"),
        (3, "inbound", "answered"),
        (4, "outbound", "sent"),
    ]
    assert {b["conversation"] for b in openai_standin.calls("responses")[2:]} == {b_call["conversation"]}
    old_agent = system.api("GET", f"/users/{tenant.user_id}/agents", tenant.api_key).json()["agents"]
    assert {a["name"]: a["phone_number_id"] for a in old_agent} == {"Shop agent": None, "B": "7001"}
    credits = system.credits(tenant)
    assert (credits["balance"], credits["reserved"]) == (997, 0)
    assert len(system.charges(tenant)) == 3


def test_a_deleted_channel_takes_no_more_messages(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    system = make_system()
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="7002")
    system.send_text(tenant, CUSTOMER, "Hi")
    graph_standin.wait_for_sent(1, timeout=20)

    deleted = system.api("DELETE", f"/users/{tenant.user_id}/phone_numbers/7002", tenant.api_key)
    assert deleted.status_code == 204

    system.send_text(tenant, CUSTOMER, "Anyone there?")  # still answered 200, then ignored
    assert system.web is not None
    wait_for(lambda: "channel_deleted" in system.web.log(), timeout=10, what="the ignored delivery logged")
    assert [m["text"] for m in _messages(system, tenant) if m["direction"] == "inbound"] == ["Hi"]
    assert len(graph_standin.sent) == 1
    listed = system.api("GET", f"/users/{tenant.user_id}/phone_numbers", tenant.api_key).json()
    assert listed == {"phone_numbers": []}

"""Human hand-off end to end: gunicorn, RQ workers, Postgres, Redis, the stand-ins for OpenAI and Meta.

A person takes a conversation over (or the whole channel), the customer's messages wait visibly and
unanswered, the person's reply reaches WhatsApp once, and when the bot resumes the AI answers what is
new, told what the person said.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import requests

from domain.handoff import HUMAN_REPLY_PREFIX
from tests.e2e.harness import System, Tenant, wait_for
from tests.support.standin_graph import StandInGraph
from tests.support.standin_openai import StandInOpenAI, echo_reply

pytestmark = pytest.mark.timeout(180)


def _message(system: System, tenant: Tenant, wamid: str) -> dict[str, Any]:
    return next(m for m in system.messages(tenant) if m["platform_message_id"] == wamid)


def _status(system: System, tenant: Tenant, wamid: str, status: str) -> None:
    wait_for(lambda: _message(system, tenant, wamid)["status"] == status, timeout=15, what=f"{wamid} {status}")


def _patch(system: System, tenant: Tenant, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = system.api("PATCH", f"/users/{tenant.user_id}/{path}", tenant.api_key, json=body)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def _echo_delivery(phone_number_id: str, customer: str, text: str, wamid: str) -> dict[str, Any]:
    echo = {
        "from": "15550000000",
        "to": customer,
        "id": wamid,
        "timestamp": str(int(time.time())),
        "type": "text",
        "text": {"body": text},
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_number_id},
        "message_echoes": [echo],
    }
    change = {"field": "smb_message_echoes", "value": value}
    return {"object": "whatsapp_business_account", "entry": [{"id": "waba", "changes": [change]}]}


def test_a_paused_conversation_waits_for_a_person_whose_reply_the_ai_is_told_of_on_resume(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    system = make_system()
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="2001")
    first = system.send_text(tenant, "15550001", "Hi, do you ship to Lisbon?")
    graph_standin.wait_for_sent(1, timeout=20)
    conversation_id = _message(system, tenant, first)["conversation_id"]

    paused = _patch(system, tenant, f"conversations/{conversation_id}", {"bot": "paused"})
    waiting = system.send_text(tenant, "15550001", "Hello? Anyone?")
    _status(system, tenant, waiting, "held")

    assert paused["bot"] == "paused"
    assert len(graph_standin.sent) == 1
    assert len(openai_standin.calls("responses")) == 1
    assert len(system.charges(tenant)) == 1

    reply = {"text": "Maria here: yes, we ship to Lisbon in 3 days."}
    path = f"/users/{tenant.user_id}/conversations/{conversation_id}/messages"
    key = {"x-api-key": tenant.api_key, "Idempotency-Key": "reply-1"}
    sent = requests.post(f"{system.base_url}{path}", json=reply, headers=key, timeout=10)
    again = requests.post(f"{system.base_url}{path}", json=reply, headers=key, timeout=10)

    assert (sent.status_code, again.status_code) == (201, 200), sent.text
    assert again.json() == sent.json()
    [human] = sent.json()["messages"]
    assert (human["sender"], human["status"]) == ("human", "sent")
    assert [s.text for s in graph_standin.wait_for_sent(2)][1:] == [reply["text"]]
    time.sleep(0.5)
    assert len(graph_standin.sent) == 2

    resumed = _patch(system, tenant, f"conversations/{conversation_id}", {"bot": "active"})
    _status(system, tenant, waiting, "skipped")
    assert _message(system, tenant, waiting)["failure_reason"] == "answered_by_human"
    later = system.send_text(tenant, "15550001", "Great, and to Porto?")
    _status(system, tenant, later, "answered")

    assert resumed["bot"] == "active"
    # The stand-in echoes every input message it was given: the person's reply came first.
    assert graph_standin.wait_for_sent(3)[2].text.endswith("| Great, and to Porto?")
    assert openai_standin.inputs()[-1] == [
        ("user", "Hello? Anyone?"),
        ("assistant", HUMAN_REPLY_PREFIX + reply["text"]),
        ("user", "Great, and to Porto?"),
    ]
    assert len(system.charges(tenant)) == 2


def test_a_paused_channel_holds_every_conversation_until_resumed_and_an_echo_pauses_one(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    system = make_system()
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="2002")

    channel = _patch(system, tenant, "phone_numbers/2002", {"bot": "paused", "display_name": "Front desk"})
    ann = system.send_text(tenant, "15550011", "From Ann")
    bob = system.send_text(tenant, "15550012", "From Bob")
    _status(system, tenant, ann, "held")
    _status(system, tenant, bob, "held")
    assert (channel["bot"], channel["display_name"]) == ("paused", "Front desk")
    assert graph_standin.sent == []

    _patch(system, tenant, "phone_numbers/2002", {"bot": "active"})
    _status(system, tenant, ann, "answered")
    _status(system, tenant, bob, "answered")

    echo_id = f"wamid.echo{uuid.uuid4().hex}"
    delivery = _echo_delivery("2002", "15550011", "Ann, I'll call you in five minutes.", echo_id)
    assert system.post_delivery(delivery).status_code == 200
    assert system.post_delivery(delivery).status_code == 200
    echoed = _message(system, tenant, echo_id)
    after_echo = system.send_text(tenant, "15550011", "OK, waiting")
    _status(system, tenant, after_echo, "held")

    assert (echoed["sender"], echoed["direction"], echoed["status"]) == ("human", "outbound", "sent")
    assert len([m for m in system.messages(tenant) if m["platform_message_id"] == echo_id]) == 1
    assert len(graph_standin.sent) == 2  # the echo went out from the business's phone, not from us


def test_a_timed_pause_ends_by_itself_and_what_waited_is_answered(
    make_system: Callable[..., System], clean_database: str, graph_standin: StandInGraph
) -> None:
    system = make_system()
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="2003")
    first = system.send_text(tenant, "15550021", "Hi")
    graph_standin.wait_for_sent(1, timeout=20)
    conversation_id = _message(system, tenant, first)["conversation_id"]
    paused = _patch(system, tenant, f"conversations/{conversation_id}", {"bot": "paused", "resume_after_minutes": 1})
    waiting = system.send_text(tenant, "15550021", "Still open today?")
    _status(system, tenant, waiting, "held")
    assert paused["bot_paused_until"] is not None

    # The shortest pause is a minute: the test moves its end into the past instead of waiting for it.
    with psycopg.connect(clean_database, autocommit=True) as conn:
        conn.execute(
            "UPDATE conversations SET bot_paused_until = now() - interval '1 second' WHERE conversation_id = %s",
            (conversation_id,),
        )

    _status(system, tenant, waiting, "answered")
    assert graph_standin.wait_for_sent(2)[1].text == echo_reply(["Still open today?"])

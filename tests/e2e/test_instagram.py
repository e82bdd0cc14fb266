"""Instagram Direct end to end: gunicorn, RQ workers, Postgres, Redis, the stand-ins for OpenAI and Meta.

A signed Instagram delivery with two messages is answered in one turn, through the Instagram send API,
split into parts of at most 1,000 UTF-8 bytes; a redelivery is not answered twice; the echo of our own
send is ignored, the echo of a message the business wrote in the Instagram app pauses the bot, and a
message the customer unsends while it waits is never answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from domain.channels import ChannelType, policy_for
from tests.e2e.harness import System, Tenant
from tests.support.processes import wait_for
from tests.support.standin_graph import StandInGraph
from tests.support.standin_openai import StandInOpenAI, echo_reply

pytestmark = pytest.mark.timeout(180)

ACCOUNT = "17841400000009001"
CUSTOMER = "IGSID00009001"


def _provision_instagram(system: System) -> Tenant:
    channel = {
        "type": "instagram",
        "phone_number_id": ACCOUNT,
        "external_number": "@shop",
        "access_token": "IGtoken-9001",
        "display_name": "Shop",
    }
    return system.provision_channel(channel, prompt_id="pmpt_ig")


def _event(mid: str, text: str, *, echo: bool = False) -> dict[str, Any]:
    business, customer = {"id": ACCOUNT}, {"id": CUSTOMER}
    message: dict[str, Any] = {"mid": mid, "text": text, **({"is_echo": True} if echo else {})}
    return {
        "sender": business if echo else customer,
        "recipient": customer if echo else business,
        "timestamp": int(time.time() * 1000),
        "message": message,
    }


def _delivery(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "instagram",
        "entry": [{"id": ACCOUNT, "time": int(time.time() * 1000), "messaging": list(events)}],
    }


def test_an_instagram_burst_is_answered_once_in_byte_bounded_parts_and_echoes_are_told_apart(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    system = make_system(INSTAGRAM_API_BASE_URL=graph_standin.base_url)
    system.start_web()
    system.start_workers()
    tenant = _provision_instagram(system)
    first, second = "Привет! Есть доставка в Москву? 🚚" * 12, "こんにちは、値段はいくらですか？😀" * 12
    delivery = _delivery(_event("mid.ig.1", first), _event("mid.ig.2", second))

    assert system.post_delivery(delivery).status_code == 200
    reply = echo_reply([first, second])
    parts = policy_for(ChannelType.INSTAGRAM).split(reply)
    assert len(reply.encode("utf-8")) > 1000 and len(parts) > 1
    sent = graph_standin.wait_for_sent(len(parts), timeout=30)
    wait_for(
        lambda: {m["status"] for m in system.messages(tenant) if m["direction"] == "outbound"} == {"sent"},
        timeout=15,
        what="every part stored as sent",
    )

    assert len(openai_standin.calls("responses")) == 1
    assert [part.text for part in sent] == list(parts)
    assert all(part.channel == "instagram" and part.phone_number_id == ACCOUNT and part.to == CUSTOMER for part in sent)
    assert all(len(part.text.encode("utf-8")) <= 1000 for part in sent)
    assert " ".join(part.text for part in sent).replace(" ", "") == reply.replace(" ", "")
    assert {part.authorization for part in sent} == {"Bearer IGtoken-9001"}

    # A redelivery is not answered twice.
    assert system.post_delivery(delivery).status_code == 200
    # The echo of our own first part is recognised and ignored: the bot stays active.
    ours = system.post_delivery(_delivery(_event(sent[0].message_id, sent[0].text, echo=True)))
    assert ours.status_code == 200
    time.sleep(1.5)
    assert len(graph_standin.sent) == len(sent)
    assert len(openai_standin.calls("responses")) == 1
    assert len(system.messages(tenant)) == 2 + len(sent)

    # A message the business wrote in the Instagram app is stored as a person's and pauses the bot.
    app = system.post_delivery(_delivery(_event("mid.ig.app", "Maria here: yes, we deliver.", echo=True)))
    assert app.status_code == 200
    human = next(m for m in system.messages(tenant) if m["platform_message_id"] == "mid.ig.app")
    assert (human["sender"], human["status"]) == ("human", "sent")
    conversation = system.api(
        "GET", f"/users/{tenant.user_id}/conversations/{human['conversation_id']}", tenant.api_key
    ).json()
    assert conversation["bot"] == "paused"
    assert system.post_delivery(_delivery(_event("mid.ig.3", "Thanks!"))).status_code == 200
    wait_for(
        lambda: any(m["platform_message_id"] == "mid.ig.3" and m["status"] == "held" for m in system.messages(tenant)),
        timeout=15,
        what="the next message held",
    )
    assert len(openai_standin.calls("responses")) == 1

    # The customer unsends the message still waiting for a person: it is skipped, never to be answered.
    deletion = _event("mid.ig.3", "")
    deletion["message"] = {"mid": "mid.ig.3", "is_deleted": True}
    assert system.post_delivery(_delivery(deletion)).status_code == 200
    unsent = next(m for m in system.messages(tenant) if m["platform_message_id"] == "mid.ig.3")
    assert (unsent["status"], unsent["failure_reason"]) == ("skipped", "deleted_by_customer")

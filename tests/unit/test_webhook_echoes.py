"""`smb_message_echoes`: what the business wrote from its WhatsApp Business app is stored once as a
person's reply in the customer's conversation, and pauses that conversation's bot."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient

from entrypoints.container import Container
from tests.unit.test_webhook_http import FIXTURES, _post, client, container

__all__ = ["client", "container"]

ECHO = (FIXTURES / "smb_message_echoes.json").read_bytes()


def _messages(container: Container) -> list[Any]:
    return sorted(container.memory_store().tables.messages.values(), key=lambda m: m.message_id)


def test_an_echo_is_stored_once_as_a_sent_human_message_and_pauses_the_conversation(
    client: FlaskClient, container: Container
) -> None:
    assert _post(client, (FIXTURES / "text.json").read_bytes()).status_code == 200

    first = _post(client, ECHO)
    again = _post(client, ECHO)

    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json["echoes"] == 1
    customer, echo = _messages(container)
    assert (echo.sender, echo.direction, echo.status) == ("human", "outbound", "sent")
    assert echo.text == "Hi Sheena, this is Maria from the shop: yes, it comes in blue too."
    assert (echo.conversation_id, echo.sequence_no) == (customer.conversation_id, 2)
    [conversation] = container.memory_store().tables.conversations.values()
    assert conversation.bot == "paused"
    assert conversation.bot_paused_until is None


def test_an_echo_to_a_customer_who_never_wrote_opens_a_paused_conversation(
    client: FlaskClient, container: Container
) -> None:
    assert _post(client, ECHO).status_code == 200

    [echo] = _messages(container)
    [conversation] = container.memory_store().tables.conversations.values()
    assert (conversation.customer_id, conversation.bot, echo.sequence_no) == ("16505551234", "paused", 1)


def test_an_unreadable_echo_is_kept_aside_and_the_delivery_still_answered(
    client: FlaskClient, container: Container
) -> None:
    payload = json.loads(ECHO)
    del payload["entry"][0]["changes"][0]["value"]["message_echoes"][0]["to"]

    answer = _post(client, json.dumps(payload).encode())

    assert answer.status_code == 200
    assert answer.json["rejected"] == 1
    assert _messages(container) == []

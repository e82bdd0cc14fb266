"""The offline responder used in dev mode without an OPENAI_API_KEY."""

from __future__ import annotations

from adapters.openai.offline import OfflineResponder
from application.ports.services import AIRequest


def test_it_says_it_is_offline() -> None:
    assert OfflineResponder().label == "offline"


def test_each_conversation_gets_a_new_id() -> None:
    responder = OfflineResponder()

    first = responder.start_conversation(metadata={"user_id": "usr_1"})
    second = responder.start_conversation(metadata={"user_id": "usr_1"})

    assert (first, second) == ("offline_conv_1", "offline_conv_2")


def test_reply_is_labelled_and_repeats_every_input_in_order() -> None:
    reply = OfflineResponder().respond(AIRequest("pmpt_1", None, "offline_conv_1", ("Hi", "Are you open today?")))

    assert reply.text == "[offline responder — no OPENAI_API_KEY set] You said: Hi / Are you open today?"
    assert (reply.response_id, reply.input_tokens, reply.output_tokens, reply.last_item_id) == (None, None, None, None)

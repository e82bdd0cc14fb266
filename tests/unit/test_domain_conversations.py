"""Rules of a conversation: numbering in order, the window counted from the customer's latest message,
archived ones taking nothing new, and why a reply may not go out."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.channels import ChannelType, policy_for
from domain.conversations import CHANNEL_REMOVED, OUTSIDE_SERVICE_WINDOW, Conversation
from domain.errors import InvalidTransition
from tests.unit.domain_builders import NOW, USER, a_conversation, an_inbound

WHATSAPP = policy_for(ChannelType.WHATSAPP)
LATER = NOW + timedelta(minutes=5)


def test_a_new_conversation_numbers_its_first_message_one_and_opens_the_window() -> None:
    inbound = an_inbound(sent_at=NOW - timedelta(seconds=3))

    conversation = Conversation.open(9, USER, "agt_1", inbound, NOW).receive(inbound, NOW)

    assert (conversation.conversation_id, conversation.last_sequence_no, conversation.is_active) == (9, 1, True)
    assert conversation.last_customer_message_at == inbound.sent_at
    assert (conversation.customer_id, conversation.customer_name) == (inbound.customer_id, "Ana")


def test_each_message_is_numbered_after_every_message_so_far() -> None:
    conversation = a_conversation(last_sequence_no=3)

    received = conversation.receive(an_inbound(), LATER)
    replied = received.append(2, LATER)

    assert (received.last_sequence_no, replied.last_sequence_no) == (4, 6)
    assert replied.last_message_at == LATER


def test_the_window_counts_from_the_latest_message_even_when_an_older_one_arrives_last() -> None:
    conversation = a_conversation(last_customer_message_at=NOW)

    late_delivery = conversation.receive(an_inbound(sent_at=NOW - timedelta(hours=2)), LATER)

    assert late_delivery.last_customer_message_at == NOW


def test_last_message_at_never_moves_back() -> None:
    conversation = a_conversation(last_message_at=LATER)

    assert conversation.receive(an_inbound(), NOW).last_message_at == LATER


def test_a_later_name_replaces_the_customers_name_and_a_missing_one_keeps_it() -> None:
    conversation = a_conversation(customer_name="Ana")

    assert conversation.receive(an_inbound(name="Ana Lima"), NOW).customer_name == "Ana Lima"
    assert conversation.receive(an_inbound(name=None), NOW).customer_name == "Ana"


def test_an_archived_conversation_takes_no_new_messages() -> None:
    archived = a_conversation().archive()

    assert not archived.is_active
    with pytest.raises(InvalidTransition, match="archived"):
        archived.receive(an_inbound(), NOW)


def test_a_reply_may_go_out_inside_the_window_only() -> None:
    conversation = a_conversation(last_customer_message_at=NOW)

    assert conversation.send_refusal(WHATSAPP, NOW + timedelta(hours=23)) is None
    assert conversation.send_refusal(WHATSAPP, NOW + timedelta(hours=24)) == OUTSIDE_SERVICE_WINDOW


def test_no_reply_goes_out_on_a_channel_that_is_gone() -> None:
    assert a_conversation().send_refusal(None, NOW) == CHANNEL_REMOVED


def test_web_chat_replies_are_never_outside_a_window() -> None:
    conversation = a_conversation(last_customer_message_at=NOW - timedelta(days=30))

    assert conversation.send_refusal(policy_for(ChannelType.WEBCHAT), NOW) is None


def test_the_ai_conversation_is_linked_once() -> None:
    linked = a_conversation().link_ai("conv_1")

    assert linked.openai_conversation_id == "conv_1"
    with pytest.raises(InvalidTransition):
        linked.link_ai("conv_2")

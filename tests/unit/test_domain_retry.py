"""What may be retried, and what a retry changes: plain domain objects, `now` passed in."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.channels import ChannelType, policy_for
from domain.conversations import (
    CHANNEL_REMOVED,
    CONVERSATION_ARCHIVED,
    NO_AGENT_NOW,
    OUTSIDE_SERVICE_WINDOW,
    REPLY_IN_PROGRESS,
)
from domain.errors import RetryRefused
from domain.messages import DELIVERY_OUTCOME_UNKNOWN, NOT_RETRYABLE, Direction, Message, MessageStatus, Sender
from tests.unit.domain_builders import NOW, a_conversation, a_message, a_part, a_route

LATER = NOW + timedelta(minutes=5)
POLICY = a_route().channel.policy


@pytest.mark.parametrize(
    "reason",
    ["ai_failed: bad request", "ai_unavailable: openai down", "ai_unavailable", "insufficient_credits", "no_agent"],
)
def test_a_failed_customer_message_goes_back_to_received_without_its_failure(reason: str) -> None:
    failed = a_message(status=MessageStatus.FAILED, failure_reason=reason)

    retried = failed.retry(LATER)

    assert retried is not None
    assert (retried.status, retried.failure_reason, retried.failure_code) == (MessageStatus.RECEIVED, None, None)
    assert retried.updated_at == LATER
    assert (retried.sequence_no, retried.text) == (failed.sequence_no, failed.text)


@pytest.mark.parametrize("reason", ["131026 Message undeliverable", "channel_unavailable", "earlier_part_failed"])
def test_a_failed_reply_part_is_claimed_for_one_more_send(reason: str) -> None:
    failed = a_part(4, MessageStatus.FAILED, failure_reason=reason, failure_code="131026")

    retried = failed.retry(LATER)

    assert retried is not None
    assert (retried.status, retried.failure_reason, retried.failure_code) == (MessageStatus.SENDING, None, None)
    # The worker's own life cycle carries it on: sent, or failed with the channel's code.
    assert retried.sent("wamid.new", LATER).status is MessageStatus.SENT
    assert retried.undeliverable("131026", "again", LATER).status is MessageStatus.FAILED


def test_a_reply_part_that_may_have_gone_out_is_never_sent_again() -> None:
    unknown = a_part(4, MessageStatus.FAILED, failure_reason=DELIVERY_OUTCOME_UNKNOWN)

    with pytest.raises(RetryRefused) as refused:
        unknown.retry(LATER)

    assert refused.value.code == NOT_RETRYABLE


@pytest.mark.parametrize(
    ("direction", "status"),
    [
        (Direction.INBOUND, MessageStatus.RECEIVED),
        (Direction.INBOUND, MessageStatus.PROCESSING),
        (Direction.INBOUND, MessageStatus.ANSWERED),
        (Direction.INBOUND, MessageStatus.SKIPPED),
        (Direction.OUTBOUND, MessageStatus.PENDING),
        (Direction.OUTBOUND, MessageStatus.SENDING),
        (Direction.OUTBOUND, MessageStatus.SENT),
        (Direction.OUTBOUND, MessageStatus.READ),
    ],
)
def test_a_message_that_is_not_failed_is_left_as_it_is(direction: Direction, status: MessageStatus) -> None:
    assert a_message(direction=direction, status=status).retry(LATER) is None


def test_a_retried_message_retried_again_changes_nothing() -> None:
    retried = a_message(status=MessageStatus.FAILED, failure_reason="ai_failed: x").retry(LATER)
    assert retried is not None

    assert retried.retry(LATER) is None


def test_the_conversation_retries_its_failed_message_when_it_can_succeed_now() -> None:
    failed = a_message(status=MessageStatus.FAILED, failure_reason="insufficient_credits")

    retried = a_conversation().retry(failed, POLICY, LATER, has_agent=True)

    assert retried is not None and retried.status is MessageStatus.RECEIVED


def test_an_archived_conversation_retries_nothing() -> None:
    failed = a_part(4, MessageStatus.FAILED, failure_reason="channel_unavailable")

    with pytest.raises(RetryRefused) as refused:
        a_conversation(is_active=False).retry(failed, POLICY, LATER, has_agent=True)

    assert refused.value.code == CONVERSATION_ARCHIVED


def test_an_archived_conversation_still_says_a_message_that_is_not_failed_needs_nothing() -> None:
    sent = a_part(4, MessageStatus.SENT)

    assert a_conversation(is_active=False).retry(sent, POLICY, LATER, has_agent=True) is None


def test_no_retry_outside_the_service_window() -> None:
    failed = a_part(4, MessageStatus.FAILED, failure_reason="131026 undeliverable")
    long_ago = NOW - timedelta(hours=25)

    with pytest.raises(RetryRefused) as refused:
        a_conversation(last_customer_message_at=long_ago).retry(failed, POLICY, NOW, has_agent=True)

    assert refused.value.code == OUTSIDE_SERVICE_WINDOW


def test_no_retry_on_a_removed_channel() -> None:
    failed = a_part(4, MessageStatus.FAILED, failure_reason="channel_unavailable")

    with pytest.raises(RetryRefused) as refused:
        a_conversation().retry(failed, None, LATER, has_agent=False)

    assert refused.value.code == CHANNEL_REMOVED


def test_a_customer_message_needs_an_agent_to_answer_it_but_a_reply_part_does_not() -> None:
    inbound = a_message(status=MessageStatus.FAILED, failure_reason="no_agent")
    part = a_part(4, MessageStatus.FAILED, failure_reason="channel_unavailable")

    with pytest.raises(RetryRefused) as refused:
        a_conversation().retry(inbound, POLICY, LATER, has_agent=False)

    assert refused.value.code == NO_AGENT_NOW
    assert a_conversation().retry(part, POLICY, LATER, has_agent=False) is not None


def test_a_part_of_a_reply_the_worker_is_still_sending_is_left_to_the_worker() -> None:
    part = a_part(4, MessageStatus.FAILED, turn_id=7, failure_reason="131026 undeliverable")

    with pytest.raises(RetryRefused) as refused:
        a_conversation().retry(part, POLICY, LATER, has_agent=True, open_turn_id=7)

    assert refused.value.code == REPLY_IN_PROGRESS
    assert a_conversation().retry(part, POLICY, LATER, has_agent=True, open_turn_id=8) is not None


# --- a person's reply part: the channel's human window, and the human-agent tag ---------------------


def _failed_part_by(sender: Sender) -> Message:
    return a_part(4, MessageStatus.FAILED, sender=sender, failure_reason="131000 service unavailable")


@pytest.mark.parametrize(
    ("channel", "written_ago", "tagged"),
    [
        (ChannelType.INSTAGRAM, timedelta(hours=23), False),
        (ChannelType.INSTAGRAM, timedelta(hours=25), True),
        (ChannelType.INSTAGRAM, timedelta(days=6, hours=23), True),
        (ChannelType.WHATSAPP, timedelta(hours=23), False),
        (ChannelType.WEBCHAT, timedelta(days=30), False),
    ],
)
def test_a_persons_failed_part_is_retried_within_the_human_window_tagged_after_the_service_window(
    channel: ChannelType, written_ago: timedelta, tagged: bool
) -> None:
    policy = policy_for(channel)
    conversation = a_conversation(last_customer_message_at=NOW - written_ago)
    part = _failed_part_by(Sender.HUMAN)

    retried = conversation.retry(part, policy, NOW, has_agent=True)

    assert retried is not None and retried.status is MessageStatus.SENDING
    assert conversation.needs_human_tag(retried, policy, NOW) is tagged


@pytest.mark.parametrize(
    ("channel", "sender", "written_ago"),
    [
        (ChannelType.INSTAGRAM, Sender.HUMAN, timedelta(days=8)),
        (ChannelType.INSTAGRAM, Sender.AI, timedelta(hours=25)),
        (ChannelType.WHATSAPP, Sender.HUMAN, timedelta(hours=25)),
    ],
)
def test_a_part_is_not_retried_once_its_senders_window_is_over(
    channel: ChannelType, sender: Sender, written_ago: timedelta
) -> None:
    conversation = a_conversation(last_customer_message_at=NOW - written_ago)

    with pytest.raises(RetryRefused) as refused:
        conversation.retry(_failed_part_by(sender), policy_for(channel), NOW, has_agent=True)

    assert refused.value.code == OUTSIDE_SERVICE_WINDOW


def test_the_ais_part_never_goes_with_the_human_agent_tag() -> None:
    instagram = policy_for(ChannelType.INSTAGRAM)
    three_days = a_conversation(last_customer_message_at=NOW - timedelta(days=3))

    assert three_days.needs_human_tag(_failed_part_by(Sender.AI), instagram, NOW) is False
    assert three_days.needs_human_tag(_failed_part_by(Sender.HUMAN), instagram, NOW) is True


@pytest.mark.parametrize("sender", [Sender.AI, Sender.HUMAN])
def test_on_web_chat_any_part_is_retried_any_time_untagged(sender: Sender) -> None:
    webchat = policy_for(ChannelType.WEBCHAT)
    a_year = a_conversation(last_customer_message_at=NOW - timedelta(days=365))

    retried = a_year.retry(_failed_part_by(sender), webchat, NOW, has_agent=True)

    assert retried is not None and retried.status is MessageStatus.SENDING
    assert a_year.needs_human_tag(retried, webchat, NOW) is False

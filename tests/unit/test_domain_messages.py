"""Rules of messages: what a customer's message is stored as, a reply part's one send attempt, the
channel's delivery reports, the channel's echo of a part we are sending, and ordering scope keys."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from attrs import evolve

from domain.conversations import Conversation
from domain.errors import InvalidTransition
from domain.messages import (
    BusinessEcho,
    DeliveryReport,
    Direction,
    InboundMessage,
    Message,
    MessageStatus,
    OrderingScope,
    ScopeKey,
)
from tests.unit.domain_builders import CHANNEL, CUSTOMER, NOW, a_conversation, a_message, a_part

S = MessageStatus
LATER = NOW + timedelta(minutes=1)


def _report(status: MessageStatus, *, code: str | None = None, reason: str | None = None) -> DeliveryReport:
    return DeliveryReport(
        "pn_1", "wamid.out", status, at=NOW + timedelta(seconds=5), error_code=code, error_reason=reason
    )


def _reported(current: MessageStatus, reported: MessageStatus) -> MessageStatus | None:
    changed = a_part(1, current).report(_report(reported), LATER)
    return None if changed is None else changed.status


@pytest.mark.parametrize(
    ("current", "reported", "expected"),
    [
        (S.PENDING, S.SENT, S.SENT),
        (S.SENDING, S.SENT, S.SENT),
        (S.SENT, S.DELIVERED, S.DELIVERED),
        (S.DELIVERED, S.READ, S.READ),
        (S.SENT, S.READ, S.READ),  # 'delivered' never came, or comes later
        (S.READ, S.PLAYED, S.PLAYED),
        (S.DELIVERED, S.SENT, None),
        (S.READ, S.DELIVERED, None),
        (S.READ, S.SENT, None),
        (S.PLAYED, S.READ, None),
        (S.SENT, S.SENT, None),
        (S.SENDING, S.FAILED, S.FAILED),
        (S.SENT, S.FAILED, S.FAILED),
        (S.DELIVERED, S.FAILED, None),  # it arrived: the failure is only a note
        (S.READ, S.FAILED, None),
        (S.FAILED, S.FAILED, None),
        (S.FAILED, S.SENT, None),
        (S.FAILED, S.DELIVERED, S.DELIVERED),  # a late 'delivered' proves it arrived after all
        (S.FAILED, S.READ, S.READ),
        (S.SENT, S.RECEIVED, None),  # not a delivery status at all
    ],
)
def test_a_delivery_report_moves_the_status_forward_only(
    current: MessageStatus, reported: MessageStatus, expected: MessageStatus | None
) -> None:
    assert _reported(current, reported) == expected


def test_delivery_status_never_moves_backwards_whatever_the_order_of_reports() -> None:
    ladder = [S.SENT, S.DELIVERED, S.READ, S.PLAYED]
    for current_rank, current in enumerate(ladder):
        for reported_rank, reported in enumerate(ladder):
            moved_to = _reported(current, reported)
            assert moved_to == (reported if reported_rank > current_rank else None), (current, reported)


def test_a_failure_after_delivery_keeps_the_status_and_notes_the_error() -> None:
    changed = a_part(1, S.DELIVERED).report(_report(S.FAILED, code="131026", reason="Receiver incapable"), LATER)

    assert changed is not None
    assert (changed.status, changed.failure_code, changed.failure_reason) == (
        S.DELIVERED,
        "131026",
        "Receiver incapable",
    )
    assert changed.updated_at == LATER


def test_a_later_report_without_a_reason_keeps_the_known_reason() -> None:
    failed = a_part(1, S.FAILED, failure_code="131047", failure_reason="Re-engagement message")

    changed = failed.report(_report(S.FAILED, code="131047"), LATER)

    assert changed is None


def test_the_first_report_that_proves_delivery_sets_the_send_time_once() -> None:
    sent = a_part(1, S.PENDING).report(_report(S.SENT), LATER)
    assert sent is not None and sent.sent_at == NOW + timedelta(seconds=5)

    read = sent.report(DeliveryReport("pn_1", "wamid.out", S.READ, at=NOW + timedelta(minutes=9)), LATER)

    assert read is not None and read.sent_at == sent.sent_at


def test_an_inbound_message_gets_no_delivery_reports() -> None:
    with pytest.raises(InvalidTransition):
        a_message(1).report(_report(S.READ), LATER)


# --- a reply part's one send attempt -------------------------------------------------------------


def test_a_part_is_claimed_then_sent_with_the_channels_id() -> None:
    claimed = a_part(1).claim(NOW)
    sent = claimed.sent("wamid.out1", LATER)

    assert claimed.status is S.SENDING
    assert (sent.status, sent.platform_message_id, sent.sent_at) == (S.SENT, "wamid.out1", LATER)


def test_only_a_pending_part_can_be_claimed() -> None:
    for status in (S.SENDING, S.SENT, S.FAILED, S.DELIVERED):
        with pytest.raises(InvalidTransition):
            a_part(1, status).claim(NOW)


def test_only_a_claimed_part_can_be_sent() -> None:
    with pytest.raises(InvalidTransition):
        a_part(1, S.PENDING).sent("wamid.out1", NOW)


def test_a_part_that_will_not_be_sent_keeps_the_channels_code_and_reason() -> None:
    failed = a_part(1, S.SENDING).undeliverable("131047", "Re-engagement message", NOW)

    assert (failed.status, failed.failure_code, failed.failure_reason) == (S.FAILED, "131047", "Re-engagement message")


def test_a_part_with_an_outcome_cannot_fail_again() -> None:
    with pytest.raises(InvalidTransition):
        a_part(1, S.SENT).undeliverable(None, "late", NOW)


def test_an_inbound_message_is_never_claimed_for_sending() -> None:
    with pytest.raises(InvalidTransition):
        a_message(1, status=S.PENDING).claim(NOW)


# --- ordering scopes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "kind", "value"),
    [
        ("conversation:42", OrderingScope.CONVERSATION, "42"),
        ("channel:106540352242922", OrderingScope.PHONE_NUMBER, "106540352242922"),
        ("channel:wc:odd:id", OrderingScope.PHONE_NUMBER, "wc:odd:id"),
    ],
)
def test_scope_key_parses_and_prints_back_the_same(key: str, kind: OrderingScope, value: str) -> None:
    scope = ScopeKey.parse(key)

    assert (scope.kind, scope.value) == (kind, value)
    assert str(scope) == key


@pytest.mark.parametrize("ordering", list(OrderingScope))
def test_ordering_scope_keys_are_parseable(ordering: OrderingScope) -> None:
    key = ordering.key(conversation_id=7, phone_number_id="pn_1")

    assert ScopeKey.parse(key).kind is ordering
    assert str(ScopeKey.parse(key)) == key


def test_conversation_and_phone_number_scopes_name_different_things() -> None:
    assert OrderingScope.CONVERSATION.key(conversation_id=7, phone_number_id="pn_1") == "conversation:7"
    assert OrderingScope.PHONE_NUMBER.key(conversation_id=7, phone_number_id="pn_1") == "channel:pn_1"


@pytest.mark.parametrize("key", ["", "conversation", "conversation:", "chat:1", ":1", "phone_number:pn_1"])
def test_scope_key_rejects_what_is_not_a_scope(key: str) -> None:
    with pytest.raises(ValueError, match="not an ordering scope key"):
        ScopeKey.parse(key)


def _inbound(text: str | None, skip_reason: str | None) -> InboundMessage:
    return InboundMessage(
        phone_number_id="pn",
        platform_message_id="wamid.1",
        customer_id="1",
        customer_name=None,
        content_type="text",
        text=text,
        skip_reason=skip_reason,
        sent_at=NOW,
        raw={},
    )


def test_only_a_text_without_a_skip_reason_is_answerable() -> None:
    assert _inbound("hi", None).answerable
    assert not _inbound(None, "image messages are not answered").answerable
    assert not _inbound("caption", "image messages are not answered").answerable


def test_an_answerable_message_is_stored_waiting_and_another_skipped_with_its_reason() -> None:
    assert (_inbound("hi", None).status, _inbound("hi", None).failure_reason) == (S.RECEIVED, None)
    skipped = _inbound(None, "unsupported_type:image")
    assert (skipped.status, skipped.failure_reason) == (S.SKIPPED, "unsupported_type:image")


# --- the channel's echo of a part we are sending --------------------------------------------------------

TEXT = "We ship to Spain, yes."


def _echo(text: str | None = TEXT, **changes: Any) -> BusinessEcho:
    return evolve(BusinessEcho(CHANNEL, "mid.echo", CUSTOMER, "text", text, NOW, {}), **changes)


def _part(status: MessageStatus = S.SENDING, **changes: Any) -> Message:
    return a_part(4, status, **{"text": TEXT, **changes})


def test_an_echo_with_the_text_of_a_part_being_sent_to_that_customer_is_our_own_send() -> None:
    assert _echo().is_our_send_in_flight(_part(), a_conversation())


@pytest.mark.parametrize(
    ("echo", "part", "conversation"),
    [
        pytest.param(_echo(), _part(S.PENDING), a_conversation(), id="part not being sent yet"),
        pytest.param(_echo(), _part(S.SENT), a_conversation(), id="part sent already, known by its id"),
        pytest.param(_echo(), _part(S.FAILED), a_conversation(), id="part failed"),
        pytest.param(_echo("We ship to Spain."), _part(), a_conversation(), id="other text"),
        pytest.param(_echo(None), _part(text=None), a_conversation(), id="no text"),
        pytest.param(_echo(customer_id="15550002"), _part(), a_conversation(), id="to another customer"),
        pytest.param(_echo(phone_number_id="pn_2"), _part(), a_conversation(), id="on another channel"),
        pytest.param(_echo(), _part(conversation_id=2), a_conversation(), id="part of another conversation"),
        pytest.param(_echo(), _part(), a_conversation(is_active=False), id="archived conversation"),
        pytest.param(
            _echo(),
            a_message(4, direction=Direction.INBOUND, status=S.SENDING, text=TEXT),
            a_conversation(),
            id="a message from the customer",
        ),
    ],
)
def test_an_echo_is_not_our_send_in_flight_unless_all_of_it_matches(
    echo: BusinessEcho, part: Message, conversation: Conversation
) -> None:
    assert not echo.is_our_send_in_flight(part, conversation)

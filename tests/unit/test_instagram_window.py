"""Instagram's windows: the AI answers within 24 hours of the customer's last message; a person from the
team may answer for 7 days, after the first 24 hours with Meta's HUMAN_AGENT tag; beyond, nothing goes out.
A person's failed reply retried by the tenant follows the same rule."""

from __future__ import annotations

from datetime import timedelta

import pytest

from application.ports.services import DeliveryFailed
from application.use_cases.add_channel import AddChannelCommand
from application.use_cases.create_agent import CreateAgentCommand
from application.use_cases.retry_message import RetryMessage, RetryMessageCommand, RetryOutcome
from application.use_cases.send_human_reply import SendHumanReply, SendHumanReplyCommand
from domain.channels import ChannelType, policy_for
from domain.errors import ChannelRefused, OutsideServiceWindow, RetryRefused
from domain.handoff import human_reply
from domain.messages import DELETED_BY_CUSTOMER, Direction, MessageStatus, Sender
from tests.unit.conftest import App
from tests.unit.domain_builders import NOW, a_conversation, a_message

INSTAGRAM = policy_for(ChannelType.INSTAGRAM)
WHATSAPP = policy_for(ChannelType.WHATSAPP)
ACCOUNT = "17841400000000042"


@pytest.mark.parametrize(
    ("ago", "ai", "person", "tag"),
    [
        (timedelta(hours=1), True, True, False),
        (timedelta(hours=24) - timedelta(seconds=1), True, True, False),
        (timedelta(hours=24), False, True, True),
        (timedelta(days=6, hours=23), False, True, True),
        (timedelta(days=7), False, False, False),
    ],
)
def test_instagram_windows_for_the_ai_and_for_a_person(ago: timedelta, ai: bool, person: bool, tag: bool) -> None:
    last = NOW - ago

    assert INSTAGRAM.window_open(last, NOW) is ai
    assert INSTAGRAM.human_window_open(last, NOW) is person
    assert INSTAGRAM.needs_human_tag(last, NOW) is tag


def test_whatsapp_has_no_human_agent_window_beyond_its_24_hours() -> None:
    last = NOW - timedelta(hours=25)

    assert (WHATSAPP.human_window_open(last, NOW), WHATSAPP.needs_human_tag(last, NOW)) == (False, False)


def test_a_customer_who_never_wrote_gets_nothing_from_anyone() -> None:
    assert (INSTAGRAM.window_open(None, NOW), INSTAGRAM.human_window_open(None, NOW)) == (False, False)


def test_a_human_reply_after_24_hours_carries_the_tag_and_after_7_days_is_refused() -> None:
    three_days = a_conversation(last_customer_message_at=NOW - timedelta(days=3))
    eight_days = a_conversation(last_customer_message_at=NOW - timedelta(days=8))

    assert human_reply(three_days, INSTAGRAM, "Hi, Maria here.", NOW).human_agent_tag
    assert not human_reply(a_conversation(), INSTAGRAM, "Hi, Maria here.", NOW).human_agent_tag
    with pytest.raises(OutsideServiceWindow):
        human_reply(eight_days, INSTAGRAM, "Hi, Maria here.", NOW)
    with pytest.raises(OutsideServiceWindow):
        human_reply(three_days, WHATSAPP, "Hi, Maria here.", NOW)


def _instagram_conversation(app: App, written_ago: timedelta) -> int:
    app.add_channel(
        AddChannelCommand(app.user.user_id, ChannelType.INSTAGRAM, "@shop", "IGtoken", phone_number_id=ACCOUNT)
    )
    app.create_agent(CreateAgentCommand(app.user.user_id, "Insta", "pmpt_ig", ACCOUNT))
    app.receive("are you open on Sunday?", "IGSID42", sent_at=app.clock.now() - written_ago, phone_number_id=ACCOUNT)
    return next(c.conversation_id for c in app.conversations() if c.phone_number_id == ACCOUNT)


def _reply(app: App, conversation_id: int) -> None:
    command = SendHumanReplyCommand(app.user.user_id, conversation_id, "Maria here: yes, from 10 to 4.")
    SendHumanReply(app.uow, app.turn_store, app.senders, app.clock)(command)


def _failed_reply(app: App, conversation_id: int) -> int:
    """A person's reply that Meta refused (a temporary error): stored failed, to be retried."""
    app.sender.failures.append(DeliveryFailed("Service unavailable", code="2"))
    with pytest.raises(ChannelRefused) as refused:
        _reply(app, conversation_id)
    assert app.store.tables.messages[refused.value.message_id].status is MessageStatus.FAILED
    return refused.value.message_id


def _retry(app: App, message_id: int) -> RetryOutcome:
    retry = RetryMessage(
        app.uow, app.message_store, app.turn_store, app.routes, app.senders, app.queue, app.clock, ordering=app.ordering
    )
    return retry(RetryMessageCommand(app.user.user_id, message_id))


@pytest.mark.parametrize(("later", "tagged"), [(timedelta(hours=21), False), (timedelta(hours=23), True)])
def test_a_persons_failed_reply_is_retried_with_the_tag_once_24_hours_have_passed(
    app: App, later: timedelta, tagged: bool
) -> None:
    conversation_id = _instagram_conversation(app, timedelta(hours=2))
    message_id = _failed_reply(app, conversation_id)
    app.clock.advance(seconds=later.total_seconds())

    outcome = _retry(app, message_id)

    assert (outcome.retried, outcome.message.status, outcome.message.sender) == (True, MessageStatus.SENT, Sender.HUMAN)
    [sent] = [s for s in app.sender.sent if s.recipient_id == "IGSID42"]
    assert (sent.text, sent.human_agent) == ("Maria here: yes, from 10 to 4.", tagged)


def test_a_persons_failed_reply_is_not_retried_once_7_days_have_passed(app: App) -> None:
    conversation_id = _instagram_conversation(app, timedelta(days=3))
    message_id = _failed_reply(app, conversation_id)
    app.clock.advance(days=4)

    with pytest.raises(RetryRefused) as refused:
        _retry(app, message_id)

    assert refused.value.code == "outside_service_window"
    assert [s for s in app.sender.sent if s.recipient_id == "IGSID42"] == []
    assert app.store.tables.messages[message_id].status is MessageStatus.FAILED


def test_the_ais_failed_reply_is_not_retried_once_24_hours_have_passed(app: App) -> None:
    _instagram_conversation(app, timedelta(hours=2))
    app.sender.failures.append(DeliveryFailed("Service unavailable", code="2"))
    app.drain()
    [part] = [m for m in app.outbound_messages() if m.phone_number_id == ACCOUNT]
    assert (part.sender, part.status) == (Sender.AI, MessageStatus.FAILED)
    app.clock.advance(hours=23)

    with pytest.raises(RetryRefused) as refused:
        _retry(app, part.message_id)

    assert refused.value.code == "outside_service_window"
    assert [s for s in app.sender.sent if s.recipient_id == "IGSID42"] == []


def test_a_persons_reply_three_days_later_goes_out_with_the_human_agent_tag(app: App) -> None:
    conversation_id = _instagram_conversation(app, timedelta(days=3))

    _reply(app, conversation_id)

    [sent] = [s for s in app.sender.sent if s.recipient_id == "IGSID42"]
    assert (sent.text, sent.human_agent) == ("Maria here: yes, from 10 to 4.", True)


def test_a_persons_reply_within_24_hours_goes_out_untagged(app: App) -> None:
    conversation_id = _instagram_conversation(app, timedelta(hours=2))

    _reply(app, conversation_id)

    assert [s.human_agent for s in app.sender.sent if s.recipient_id == "IGSID42"] == [False]


def test_a_persons_reply_eight_days_later_is_refused_and_nothing_is_sent(app: App) -> None:
    conversation_id = _instagram_conversation(app, timedelta(days=8))

    with pytest.raises(OutsideServiceWindow):
        _reply(app, conversation_id)

    assert [s for s in app.sender.sent if s.recipient_id == "IGSID42"] == []


@pytest.mark.parametrize(
    ("status", "skipped"),
    [
        (MessageStatus.RECEIVED, True),
        (MessageStatus.HELD, True),
        (MessageStatus.FAILED, True),
        (MessageStatus.PROCESSING, False),
        (MessageStatus.ANSWERED, False),
        (MessageStatus.SKIPPED, False),
    ],
)
def test_an_unsent_message_is_skipped_only_while_it_waits_for_an_answer(status: MessageStatus, skipped: bool) -> None:
    message = a_message(status=status, failure_reason="x" if status is MessageStatus.FAILED else None)

    deleted = message.deleted_by_customer(NOW)

    if skipped:
        assert deleted is not None
        assert (deleted.status, deleted.failure_reason, deleted.updated_at) == (
            MessageStatus.SKIPPED,
            DELETED_BY_CUSTOMER,
            NOW,
        )
    else:
        assert deleted is None


def test_our_own_messages_are_never_deleted_by_the_customer() -> None:
    assert (
        a_message(direction=Direction.OUTBOUND, sender=Sender.AI, status=MessageStatus.PENDING).deleted_by_customer(NOW)
        is None
    )

"""A person's reply through the API, on the in-memory adapters: stored as `human`, sent once, pausing the
bot; refused outside the service window or in an archived conversation; replayed by its Idempotency-Key."""

from __future__ import annotations

import pytest

from application.ports.services import DeliveryFailed
from application.use_cases.control_conversation_bot import ControlConversationBot, ControlConversationBotCommand
from application.use_cases.retry_message import RetryMessage, RetryMessageCommand
from application.use_cases.send_human_reply import SendHumanReply, SendHumanReplyCommand, SentHumanReply
from domain.channels import BotState
from domain.errors import ChannelRefused, ConversationArchived, NotFound, OutsideServiceWindow
from domain.handoff import ANSWERED_BY_HUMAN, HUMAN_REPLY_PREFIX
from domain.messages import Direction, MessageStatus, Sender
from tests.unit.conftest import App

S = MessageStatus


def _reply(app: App, text: str = "A person here: yes, we ship on Sundays.", **options: object) -> SentHumanReply:
    conversation_id = app.conversations()[-1].conversation_id
    command = SendHumanReplyCommand(app.user.user_id, conversation_id, text, **options)  # type: ignore[arg-type]
    return SendHumanReply(app.uow, app.turn_store, app.senders, app.clock)(command)


def test_a_human_reply_is_stored_as_human_sent_once_and_pauses_the_bot(app: App) -> None:
    app.receive("do you ship on Sundays?")
    app.drain()

    sent = _reply(app)

    [part] = sent.parts
    assert (part.sender, part.direction, part.status) == (Sender.HUMAN, Direction.OUTBOUND, S.SENT)
    assert part.sequence_no == 3
    assert app.sent_texts()[-1] == "A person here: yes, we ship on Sundays."
    assert app.conversations()[-1].bot is BotState.PAUSED
    assert app.conversations()[-1].last_sequence_no == 3


def test_a_reply_with_pause_false_leaves_the_bot_active(app: App) -> None:
    app.receive("hello")

    _reply(app, pause=False)

    assert app.conversations()[-1].bot is BotState.ACTIVE


def test_the_same_idempotency_key_returns_the_first_reply_and_sends_nothing_again(app: App) -> None:
    app.receive("hello")
    first = _reply(app, idempotency_key="k-1")

    again = _reply(app, "something else", idempotency_key="k-1")

    assert again.replayed
    assert again.parts == first.parts
    assert len([s for s in app.sender.sent if s.text.startswith("A person")]) == 1
    assert len(app.outbound_messages()) == 1


def test_a_long_reply_is_split_as_the_channel_needs(app: App) -> None:
    app.receive("hello")

    sent = _reply(app, ("word " * 1000).strip())

    assert len(sent.parts) == 2
    assert [p.sequence_no for p in sent.parts] == [2, 3]


def test_outside_the_service_window_nothing_is_stored_or_sent(app: App) -> None:
    app.receive("hello")
    app.clock.advance(hours=25)

    with pytest.raises(OutsideServiceWindow):
        _reply(app)

    assert app.outbound_messages() == []
    assert app.sender.sent == []


def test_an_archived_conversation_takes_no_reply(app: App) -> None:
    app.receive("hello")
    conversation = app.conversations()[-1]
    app.store.tables.conversations[conversation.conversation_id] = conversation.archive()

    with pytest.raises(ConversationArchived):
        _reply(app)


def test_a_refused_send_is_stored_failed_with_metas_code_and_said(app: App) -> None:
    app.receive("hello")
    app.sender.failures.append(DeliveryFailed("Re-engagement message", code="131047"))

    with pytest.raises(ChannelRefused) as refused:
        _reply(app)

    [part] = app.outbound_messages()
    assert (part.status, part.failure_code, part.sender) == (S.FAILED, "131047", Sender.HUMAN)
    assert refused.value.message_id == part.message_id


def test_another_tenants_conversation_is_not_found(app: App) -> None:
    app.receive("hello")
    command = SendHumanReplyCommand("usr_other", app.conversations()[-1].conversation_id, "hi")

    with pytest.raises(NotFound):
        SendHumanReply(app.uow, app.turn_store, app.senders, app.clock)(command)


def test_on_resume_messages_the_person_answered_are_skipped_and_later_ones_answered(app: App) -> None:
    app.receive("hello")
    app.drain()
    conversation_id = app.conversations()[-1].conversation_id
    control = ControlConversationBot(app.uow, app.queue, app.clock, app.ordering)
    control(ControlConversationBotCommand(app.user.user_id, conversation_id, BotState.PAUSED))
    app.receive("question one")
    app.drain()
    _reply(app, "answer to one")
    app.receive("question two")
    app.drain()

    control(ControlConversationBotCommand(app.user.user_id, conversation_id, BotState.ACTIVE))
    app.drain()

    one, two = app.message("wamid.in2"), app.message("wamid.in3")
    assert (one.status, one.failure_reason) == (S.SKIPPED, ANSWERED_BY_HUMAN)
    assert two.status is S.ANSWERED
    assert app.ai.inputs[-1] == ("question two",)
    assert app.ai.requests[-1].context == (
        ("user", "question one"),
        ("assistant", HUMAN_REPLY_PREFIX + "answer to one"),
    )


def test_the_ai_is_told_of_a_persons_reply_once_only(app: App) -> None:
    app.receive("hello")
    app.drain()
    _reply(app, "a person's word", pause=False)

    app.receive("thanks")
    app.drain()
    app.receive("bye")
    app.drain()

    assert [r.context for r in app.ai.requests] == [(), (("assistant", HUMAN_REPLY_PREFIX + "a person's word"),), ()]


def test_a_failed_human_reply_can_be_retried_and_is_sent_once_more(app: App) -> None:
    app.receive("hello")
    app.sender.failures.append(DeliveryFailed("Service unavailable", code="131000"))
    with pytest.raises(ChannelRefused) as refused:
        _reply(app)
    retry = RetryMessage(
        app.uow, app.message_store, app.turn_store, app.routes, app.senders, app.queue, app.clock, ordering=app.ordering
    )

    outcome = retry(RetryMessageCommand(app.user.user_id, refused.value.message_id))

    assert outcome.retried
    assert (outcome.message.status, outcome.message.sender) == (S.SENT, Sender.HUMAN)
    assert app.sent_texts()[-1] == "A person here: yes, we ship on Sundays."

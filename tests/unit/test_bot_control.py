"""Bot control end to end on the in-memory adapters: pausing holds, resuming answers what nobody did."""

from __future__ import annotations

import pytest

from application.use_cases.control_conversation_bot import ControlConversationBot, ControlConversationBotCommand
from application.use_cases.resume_ended_pauses import ResumeEndedPauses
from application.use_cases.update_channel import UpdateChannel, UpdateChannelCommand
from domain.channels import BotState
from domain.conversations import Conversation
from domain.errors import ConversationArchived, NotFound, ValidationFailed
from domain.messages import MessageStatus, OrderingScope
from tests.unit.conftest import PHONE_NUMBER_ID, App, MakeApp

S = MessageStatus


def _control(app: App) -> ControlConversationBot:
    return ControlConversationBot(app.uow, app.queue, app.clock, app.ordering)


def _bot(app: App, conversation_id: int, bot: BotState, minutes: int | None = None) -> Conversation:
    command = ControlConversationBotCommand(app.user.user_id, conversation_id, bot, minutes)
    return _control(app)(command)


def _channel_bot(app: App, bot: BotState) -> None:
    UpdateChannel(app.uow, app.routes, app.queue, app.clock, app.ordering)(
        UpdateChannelCommand(app.user.user_id, PHONE_NUMBER_ID, bot=bot)
    )


def _conversation_id(app: App) -> int:
    return app.conversations()[-1].conversation_id


def test_a_paused_conversation_stores_the_customers_message_unanswered_and_uncharged(app: App) -> None:
    app.receive("hello")
    app.drain()
    _bot(app, _conversation_id(app), BotState.PAUSED)

    app.receive("are you there?")
    app.drain()

    assert app.message("wamid.in2").status is S.HELD
    assert len(app.ai.requests) == 1
    assert len(app.charges()) == 1
    assert app.credits().available == 9


def test_resuming_gives_the_ai_what_came_while_paused(app: App) -> None:
    app.receive("hello")
    app.drain()
    conversation_id = _conversation_id(app)
    _bot(app, conversation_id, BotState.PAUSED)
    app.receive("one")
    app.receive("two")
    app.drain()

    resumed = _bot(app, conversation_id, BotState.ACTIVE)
    app.drain()

    assert resumed.bot is BotState.ACTIVE
    assert app.ai.inputs[-1] == ("one", "two")
    assert [app.message(w).status for w in ("wamid.in2", "wamid.in3")] == [S.ANSWERED, S.ANSWERED]
    assert len(app.charges()) == 2


def test_a_paused_channel_holds_every_conversation_and_its_resume_releases_them(app: App) -> None:
    _channel_bot(app, BotState.PAUSED)
    app.receive("from ann", customer="ann")
    app.receive("from bob", customer="bob")
    app.drain()
    assert [m.status for m in app.inbound_messages()] == [S.HELD, S.HELD]

    _channel_bot(app, BotState.ACTIVE)
    app.drain()

    assert [m.status for m in app.inbound_messages()] == [S.ANSWERED, S.ANSWERED]
    assert sorted(app.sent_texts()) == ["reply to: from ann", "reply to: from bob"]


def test_a_conversation_paused_itself_stays_held_when_its_channel_resumes(app: App) -> None:
    app.receive("hello")
    app.drain()
    conversation_id = _conversation_id(app)
    _bot(app, conversation_id, BotState.PAUSED)
    _channel_bot(app, BotState.PAUSED)
    app.receive("still there?")
    app.drain()

    _channel_bot(app, BotState.ACTIVE)
    app.drain()

    assert app.message("wamid.in2").status is S.HELD


def test_a_timed_pause_is_resumed_by_the_sweep_and_the_held_message_answered(app: App) -> None:
    app.receive("hello")
    app.drain()
    conversation_id = _conversation_id(app)
    paused = _bot(app, conversation_id, BotState.PAUSED, minutes=10)
    app.receive("later")
    app.drain()
    sweep = ResumeEndedPauses(app.turn_store, app.uow, app.queue, app.clock, app.ordering)

    assert paused.bot_paused_until is not None
    assert sweep() == 0
    app.clock.advance(minutes=10)
    assert sweep() == 1
    app.drain()

    assert app.message("wamid.in2").status is S.ANSWERED
    assert app.conversations()[-1].bot is BotState.ACTIVE


def test_the_released_scope_is_the_channel_under_phone_number_ordering(make_app: MakeApp) -> None:
    app = make_app(ordering=OrderingScope.PHONE_NUMBER)
    app.receive("hello")
    app.drain()
    _bot(app, _conversation_id(app), BotState.PAUSED)
    app.receive("later")
    app.drain()

    _bot(app, _conversation_id(app), BotState.ACTIVE)

    assert app.queue.enqueued[-1] == f"channel:{PHONE_NUMBER_ID}"


@pytest.mark.parametrize(("bot", "minutes"), [(BotState.PAUSED, 0), (BotState.PAUSED, 10_081), (BotState.ACTIVE, 5)])
def test_a_resume_time_out_of_bounds_or_with_active_is_refused_naming_the_field(
    app: App, bot: BotState, minutes: int
) -> None:
    app.receive("hello")

    with pytest.raises(ValidationFailed) as refused:
        _bot(app, _conversation_id(app), bot, minutes)

    assert refused.value.field == "resume_after_minutes"


def test_another_tenants_or_a_missing_conversation_is_not_found(app: App) -> None:
    app.receive("hello")
    command = ControlConversationBotCommand("usr_someone_else", _conversation_id(app), BotState.PAUSED)

    with pytest.raises(NotFound):
        _control(app)(command)
    with pytest.raises(NotFound):
        _bot(app, 999, BotState.PAUSED)


def test_an_archived_conversation_cannot_be_paused(app: App) -> None:
    app.receive("hello")
    conversation = app.conversations()[-1]
    app.store.tables.conversations[conversation.conversation_id] = conversation.archive()

    with pytest.raises(ConversationArchived):
        _bot(app, conversation.conversation_id, BotState.PAUSED)

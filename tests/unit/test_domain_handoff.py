"""The hand-off's rules on plain objects: who answers, pauses and their end, what a resume releases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from attrs import evolve

from domain.channels import BotState
from domain.credits import Credits
from domain.errors import InvalidTransition, ValidationFailed
from domain.handoff import ANSWERED_BY_HUMAN, HUMAN_REPLY_PREFIX, ai_context, release_held
from domain.messages import Direction, MessageStatus, Sender
from domain.turns import Turn, TurnHeld, TurnStarted
from tests.unit.domain_builders import NOW, a_conversation, a_message, a_route

S = MessageStatus


def _credits() -> Credits:
    return Credits("usr_1", 10, 0, NOW)


def test_the_ai_answers_only_when_the_channel_and_the_conversation_are_both_active() -> None:
    active = a_conversation()
    paused = active.pause(NOW)

    assert active.ai_answers(BotState.ACTIVE)
    assert not active.ai_answers(BotState.PAUSED)
    assert not paused.ai_answers(BotState.ACTIVE)


def test_a_timed_pause_runs_out_at_its_time_and_an_open_pause_never() -> None:
    timed = a_conversation().pause(NOW, timedelta(minutes=30))
    open_ended = a_conversation().pause(NOW)

    assert timed.bot_paused_until == NOW + timedelta(minutes=30)
    assert not timed.paused_run_out(NOW + timedelta(minutes=29))
    assert timed.paused_run_out(NOW + timedelta(minutes=30))
    assert not open_ended.paused_run_out(NOW + timedelta(days=365))


def test_resuming_clears_the_pause_and_its_time() -> None:
    resumed = a_conversation().pause(NOW, timedelta(minutes=5)).resume()

    assert (resumed.bot, resumed.bot_paused_until) == (BotState.ACTIVE, None)


def test_a_pause_of_no_length_is_refused() -> None:
    with pytest.raises(InvalidTransition):
        a_conversation().pause(NOW, timedelta(0))


def test_a_paused_conversation_holds_its_batch_with_no_charge() -> None:
    batch = (a_message(4), a_message(5))

    result = Turn.start(a_conversation().pause(NOW), batch, a_route(), _credits(), 1, NOW)

    assert isinstance(result, TurnHeld)
    assert result.batch.message_ids == (4, 5)
    assert (result.batch.before, result.batch.after) == (S.RECEIVED, S.HELD)
    assert result.channel_bot is BotState.ACTIVE


def test_a_paused_channel_holds_the_batch_of_an_active_conversation() -> None:
    route = a_route()
    paused_route = evolve(route, channel=route.channel.update(bot=BotState.PAUSED))

    held = Turn.start(a_conversation(), (a_message(4),), paused_route, _credits(), 1, NOW)
    answered = Turn.start(a_conversation(), (a_message(4),), route, _credits(), 1, NOW)

    assert isinstance(held, TurnHeld)
    assert held.channel_bot is BotState.PAUSED
    assert isinstance(answered, TurnStarted)


def test_on_resume_held_messages_after_the_last_reply_go_back_to_the_ai_and_earlier_ones_are_skipped() -> None:
    held = [a_message(n, status=S.HELD) for n in (2, 3, 5, 6)]

    conversation = a_conversation(last_sequence_no=6)

    resumed = release_held(conversation, held, 4, NOW)

    assert resumed.to_answer.conversation_id == resumed.answered.conversation_id == conversation.conversation_id
    assert resumed.to_answer.message_ids == (5, 6)
    assert (resumed.to_answer.before, resumed.to_answer.after) == (S.HELD, S.RECEIVED)
    assert resumed.answered.message_ids == (2, 3)
    assert (resumed.answered.after, resumed.answered.reason) == (S.SKIPPED, ANSWERED_BY_HUMAN)
    assert resumed.released


def test_nothing_is_released_while_the_conversation_is_still_paused() -> None:
    with pytest.raises(InvalidTransition):
        release_held(a_conversation().pause(NOW), [a_message(2, status=S.HELD)], 0, NOW)


def test_only_held_inbound_messages_are_released() -> None:
    with pytest.raises(InvalidTransition):
        release_held(a_conversation(), [a_message(2, status=S.RECEIVED)], 0, NOW)
    with pytest.raises(InvalidTransition):
        release_held(a_conversation(), [a_message(2, status=S.HELD, direction=Direction.OUTBOUND)], 0, NOW)


def test_a_channel_update_changes_what_was_given_and_refuses_an_empty_token() -> None:
    channel = a_route().channel

    changed = channel.update(display_name="  Front desk ", access_token=" EAAG-new ", bot=BotState.PAUSED)
    cleared = channel.update(display_name="")

    assert (changed.display_name, changed.access_token, changed.bot) == ("Front desk", "EAAG-new", BotState.PAUSED)
    assert cleared.display_name is None
    assert channel.update() == channel
    with pytest.raises(ValidationFailed):
        channel.update(access_token="  ")


def test_the_ai_is_told_what_a_person_answered_and_their_reply_but_not_what_never_reached_the_customer() -> None:
    unseen = [
        a_message(5, status=S.SKIPPED, text="question", failure_reason=ANSWERED_BY_HUMAN),
        a_message(6, direction=Direction.OUTBOUND, sender=Sender.HUMAN, status=S.SENT, text="answer"),
        a_message(7, direction=Direction.OUTBOUND, sender=Sender.HUMAN, status=S.FAILED, text="lost"),
        a_message(8, status=S.SKIPPED, text=None, content_type="image"),
    ]

    assert ai_context(list(reversed(unseen))) == (("user", "question"), ("assistant", HUMAN_REPLY_PREFIX + "answer"))

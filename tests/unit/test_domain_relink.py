"""RelinkAgent's rules on plain objects: what an agent leaving a channel does to its conversations,
the turn in flight and the messages not answered yet."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.credits import CreditMovement
from domain.errors import InvalidTransition, ValidationFailed
from domain.messages import MessageStatus
from domain.relink import AGENT_UNLINKED, RELINKED, Seat, relink
from domain.tenancy import Agent
from domain.turns import StatusChange, TurnStatus
from tests.unit.domain_builders import CHANNEL, NOW, USER, a_conversation, a_message, a_turn

LATER = NOW + timedelta(minutes=5)
A = Agent("agt_1", USER, CHANNEL, "Sales", "pmpt_1", None, NOW)
B = Agent("agt_2", USER, "pn_2", "Support", "pmpt_2", None, NOW)
CONVERSATION_ID = a_conversation().conversation_id


def a_seat(agent: Agent = A) -> Seat:
    """Agent A on CHANNEL mid-turn: turn 7 awaits the AI for messages 1 and 2; message 3 came meanwhile."""
    return Seat(
        agent,
        (a_conversation(),),
        (a_turn(),),
        (
            a_message(1, status=MessageStatus.PROCESSING, turn_id=7, sent_at=NOW),
            a_message(2, status=MessageStatus.PROCESSING, turn_id=7, sent_at=NOW + timedelta(seconds=1)),
            a_message(3, sent_at=NOW + timedelta(seconds=2)),
        ),
    )


def test_linking_to_a_held_channel_unlinks_its_agent_first() -> None:
    moves = relink(B, B.link(CHANNEL), holder=A)

    assert [(m.before.agent_id, m.after.phone_number_id, m.leaves) for m in moves] == [
        ("agt_1", None, CHANNEL),
        ("agt_2", CHANNEL, "pn_2"),
    ]
    assert moves[0].successor == B.link(CHANNEL)
    assert moves[1].successor is None


def test_a_name_or_prompt_change_moves_nobody_off_a_channel() -> None:
    [move] = relink(A, A.edit(name="Sales EU", prompt_id="pmpt_9", prompt_version=None), holder=A)

    assert move.leaves is None
    assert move.depart(a_seat(), LATER).archived == ()


def test_displaced_agents_conversation_is_archived_naming_both_agents() -> None:
    displaced, _ = relink(B, B.link(CHANNEL), holder=A)

    departure = displaced.depart(a_seat(), LATER)

    [archived] = departure.archived
    assert (archived.conversation_id, archived.old_agent_id, archived.new_agent_id, archived.phone_number_id) == (
        1,
        "agt_1",
        "agt_2",
        CHANNEL,
    )


def test_turn_awaiting_the_ai_is_failed_as_relinked_and_its_hold_released() -> None:
    displaced, _ = relink(B, B.link(CHANNEL), holder=A)

    [withdrawn] = displaced.depart(a_seat(), LATER).withdrawn

    assert (withdrawn.turn.status, withdrawn.turn.failure_reason) == (TurnStatus.FAILED, RELINKED)
    assert withdrawn.before is TurnStatus.AWAITING_AI
    assert withdrawn.release == CreditMovement.release(USER, 1)


def test_unanswered_messages_go_in_order_to_a_new_conversation_with_the_new_agent() -> None:
    displaced, _ = relink(B, B.link(CHANNEL), holder=A)

    [reopened] = displaced.depart(a_seat(), LATER).reopened

    assert (reopened.agent_id, reopened.phone_number_id, reopened.customer_id) == ("agt_2", CHANNEL, "15550001")
    assert [(c.message_id, c.sequence_no, c.before) for c in reopened.messages] == [
        (1, 1, MessageStatus.PROCESSING),
        (2, 2, MessageStatus.PROCESSING),
        (3, 3, MessageStatus.RECEIVED),
    ]
    assert reopened.last_sequence_no == 3
    assert reopened.last_customer_message_at == NOW + timedelta(seconds=2)


def test_without_a_successor_unanswered_messages_are_skipped_not_answered() -> None:
    [move] = relink(A, A.link(None), holder=None)

    departure = move.depart(a_seat(), LATER)

    assert departure.reopened == ()
    assert departure.skipped == (
        StatusChange(CONVERSATION_ID, (3,), MessageStatus.RECEIVED, MessageStatus.SKIPPED, AGENT_UNLINKED),
        StatusChange(CONVERSATION_ID, (1, 2), MessageStatus.PROCESSING, MessageStatus.SKIPPED, AGENT_UNLINKED),
    )
    assert departure.withdrawn[0].turn.failure_reason == AGENT_UNLINKED
    assert departure.archived[0].new_agent_id is None


def test_messages_skipped_are_named_with_their_conversation_one_change_each() -> None:
    seat = Seat(
        A,
        (a_conversation(), a_conversation(conversation_id=2, customer_id="15550002")),
        (),
        (a_message(3), a_message(4, conversation_id=2), a_message(5, conversation_id=2, status=MessageStatus.HELD)),
    )
    [move] = relink(A, A.link(None), holder=None)

    departure = move.depart(seat, LATER)

    assert departure.skipped == (
        StatusChange(CONVERSATION_ID, (3,), MessageStatus.RECEIVED, MessageStatus.SKIPPED, AGENT_UNLINKED),
        StatusChange(2, (4,), MessageStatus.RECEIVED, MessageStatus.SKIPPED, AGENT_UNLINKED),
        StatusChange(2, (5,), MessageStatus.HELD, MessageStatus.SKIPPED, AGENT_UNLINKED),
    )


def test_a_replying_turn_is_left_to_deliver_its_answer() -> None:
    seat = Seat(A, (a_conversation(),), (), (a_message(3),))
    [move] = relink(A, A.delete(LATER), holder=None)

    departure = move.depart(seat, LATER)

    assert departure.withdrawn == ()
    assert departure.skipped == (
        StatusChange(CONVERSATION_ID, (3,), MessageStatus.RECEIVED, MessageStatus.SKIPPED, AGENT_UNLINKED),
    )


def test_agent_moving_to_another_channel_archives_on_the_one_it_leaves() -> None:
    [move] = relink(A, A.link("pn_3"), holder=None)

    departure = move.depart(a_seat(), LATER)

    assert [a.phone_number_id for a in departure.archived] == [CHANNEL]
    assert departure.archived[0].new_agent_id is None


def test_a_deleted_agent_is_unlinked_and_cannot_be_linked_again() -> None:
    deleted = A.delete(LATER)

    assert (deleted.phone_number_id, deleted.deleted_at) == (None, LATER)
    with pytest.raises(InvalidTransition):
        deleted.link(CHANNEL)


def test_an_edit_validates_like_a_new_agent() -> None:
    with pytest.raises(ValidationFailed) as name:
        A.edit(name="  ", prompt_id="pmpt_1", prompt_version=None)
    with pytest.raises(ValidationFailed) as prompt:
        A.edit(name="Sales", prompt_id="asst_1", prompt_version=None)

    assert (name.value.field, prompt.value.field) == ("name", "prompt_id")
    assert A.edit(name=" Sales ", prompt_id="pmpt_2", prompt_version=" ").prompt_version is None


def test_a_seat_of_another_agent_is_refused() -> None:
    [move] = relink(A, A.link(None), holder=None)

    with pytest.raises(InvalidTransition):
        move.depart(a_seat(B), LATER)


def _paused_seat() -> Seat:
    """Agent A on CHANNEL with its bot paused: messages 1 and 2 were held for a person who never answered."""
    return Seat(
        A,
        (a_conversation(),),
        (),
        (
            a_message(1, status=MessageStatus.HELD, sent_at=NOW),
            a_message(2, status=MessageStatus.HELD, sent_at=NOW + timedelta(seconds=1)),
        ),
    )


def test_messages_held_for_a_person_go_to_the_new_agent_like_the_others() -> None:
    displaced, _ = relink(B, B.link(CHANNEL), holder=A)

    [reopened] = displaced.depart(_paused_seat(), LATER).reopened

    assert [(c.message_id, c.sequence_no, c.before) for c in reopened.messages] == [
        (1, 1, MessageStatus.HELD),
        (2, 2, MessageStatus.HELD),
    ]


def test_without_a_successor_held_messages_are_skipped_as_unlinked() -> None:
    [move] = relink(A, A.link(None), holder=None)

    departure = move.depart(_paused_seat(), LATER)

    assert departure.skipped == (
        StatusChange(CONVERSATION_ID, (1, 2), MessageStatus.HELD, MessageStatus.SKIPPED, AGENT_UNLINKED),
    )

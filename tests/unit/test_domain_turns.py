"""Rules of an AI turn, with plain objects: when a batch gets an AI call, what an answer or a failure
changes, and how the reply's parts go out — each at most once, in order."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.channels import ChannelType, policy_for
from domain.conversations import CHANNEL_REMOVED, OUTSIDE_SERVICE_WINDOW
from domain.credits import LedgerKind
from domain.errors import InvalidTransition
from domain.messages import MessageStatus
from domain.turns import (
    AI_UNAVAILABLE,
    CHANNEL_UNAVAILABLE,
    DELIVERY_OUTCOME_UNKNOWN,
    EARLIER_PART_FAILED,
    INSUFFICIENT_CREDITS,
    NO_AGENT,
    AIReply,
    PartChange,
    Reply,
    StepKind,
    Turn,
    TurnAnswered,
    TurnFailed,
    TurnPostponed,
    TurnRefused,
    TurnStarted,
    TurnStatus,
)
from tests.unit.domain_builders import NOW, USER, a_conversation, a_message, a_part, a_route, a_turn, credits

S = MessageStatus
WHATSAPP = policy_for(ChannelType.WHATSAPP)
LATER = NOW + timedelta(seconds=2)
BATCH = (a_message(4), a_message(5))
REPLY = AIReply(
    text="Sure, we ship to Lisbon.", response_id="resp_1", input_tokens=40, output_tokens=9, last_item_id="i"
)


def _start(**changes: object) -> TurnStarted | TurnRefused:
    arguments: dict[str, object] = {
        "conversation": a_conversation(),
        "batch": BATCH,
        "route": a_route(),
        "credits": credits(10),
        "cost": 1,
        "now": NOW,
    }
    arguments.update(changes)
    return Turn.start(**arguments)  # type: ignore[arg-type]


# --- starting a turn -----------------------------------------------------------------------------


def test_a_batch_starts_a_turn_that_holds_its_credits_and_takes_its_messages() -> None:
    started = _start()

    assert isinstance(started, TurnStarted)
    assert (started.hold.user_id, started.hold.reserved, started.hold.balance) == (USER, 1, 0)
    assert (started.batch.message_ids, started.batch.before, started.batch.after) == ((4, 5), S.RECEIVED, S.PROCESSING)
    turn = started.turn(turn_id=12)
    assert (turn.turn_id, turn.status, turn.inbound_ids, turn.credits_reserved) == (
        12,
        TurnStatus.AWAITING_AI,
        (4, 5),
        1,
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"route": None}, NO_AGENT),
        ({"route": a_route(agent=False)}, NO_AGENT),
        ({"now": NOW + timedelta(hours=24, seconds=1)}, OUTSIDE_SERVICE_WINDOW),
        ({"credits": credits(0)}, INSUFFICIENT_CREDITS),
        ({"credits": credits(5, 5)}, INSUFFICIENT_CREDITS),
        ({"cost": 3, "credits": credits(2)}, INSUFFICIENT_CREDITS),
    ],
    ids=["channel gone", "no agent", "window closed", "no credits", "all held", "too few"],
)
def test_a_batch_that_cannot_be_answered_is_refused_with_the_reason(changes: dict[str, object], reason: str) -> None:
    refused = _start(**changes)

    assert isinstance(refused, TurnRefused)
    assert refused.reason == reason
    assert (refused.batch.message_ids, refused.batch.before, refused.batch.after) == ((4, 5), S.RECEIVED, S.FAILED)


def test_web_chat_batches_are_answered_days_later() -> None:
    started = _start(route=a_route(ChannelType.WEBCHAT), now=NOW + timedelta(days=3))

    assert isinstance(started, TurnStarted)


def test_a_free_turn_needs_no_credits() -> None:
    started = _start(cost=0, credits=credits(0))

    assert isinstance(started, TurnStarted)
    assert started.credits_reserved == 0


@pytest.mark.parametrize(
    "batch",
    [(), (a_message(4, status=S.PROCESSING),), (a_message(4, conversation_id=2),)],
    ids=["empty", "taken already", "another conversation"],
)
def test_only_received_messages_of_the_conversation_make_a_batch(batch: tuple[object, ...]) -> None:
    with pytest.raises(InvalidTransition):
        _start(batch=batch)


def test_a_batch_is_answered_once_the_customer_has_been_quiet_long_enough() -> None:
    batch = (a_message(4, created_at=NOW), a_message(5, created_at=NOW + timedelta(seconds=3)))

    assert Turn.due_at(batch, timedelta(seconds=5)) == NOW + timedelta(seconds=8)
    assert Turn.due_at(batch, timedelta(0)) == NOW + timedelta(seconds=3)


# --- the AI's answer -----------------------------------------------------------------------------


def test_an_answer_stores_the_reply_answers_the_batch_and_turns_the_hold_into_one_charge() -> None:
    answered = a_turn().answer(REPLY, a_conversation(), WHATSAPP, LATER)

    assert isinstance(answered, TurnAnswered)
    assert (answered.before, answered.turn.status, answered.turn.response_id) == (
        TurnStatus.AWAITING_AI,
        TurnStatus.REPLYING,
        "resp_1",
    )
    [part] = answered.parts
    assert (part.text, part.status, part.input_tokens, part.output_tokens) == (REPLY.text, S.SENDING, 40, 9)
    assert (answered.batch.message_ids, answered.batch.before, answered.batch.after) == (
        (1, 2),
        S.PROCESSING,
        S.ANSWERED,
    )
    charge = answered.charge
    assert (charge.ledger, charge.balance, charge.reserved, charge.turn_id) == (LedgerKind.CHARGE, -1, -1, 7)
    assert answered.last_item_id == "i"


def test_a_long_answer_is_split_as_the_channel_needs_and_only_the_first_part_is_claimed() -> None:
    long_text = " ".join(["word"] * 2000)  # ~10k characters

    answered = a_turn().answer(AIReply(long_text, "resp_1", 5, 6), a_conversation(), WHATSAPP, LATER)

    assert isinstance(answered, TurnAnswered)
    assert len(answered.parts) == 3
    assert [p.status for p in answered.parts] == [S.SENDING, S.PENDING, S.PENDING]
    assert [p.input_tokens for p in answered.parts] == [5, None, None]
    assert " ".join(p.text for p in answered.parts).split() == long_text.split()


def test_an_answer_after_the_window_closed_is_stored_but_not_claimed_for_sending() -> None:
    conversation = a_conversation(last_customer_message_at=NOW - timedelta(hours=24))

    answered = a_turn().answer(REPLY, conversation, WHATSAPP, LATER)

    assert isinstance(answered, TurnAnswered)
    assert answered.parts[0].status is S.PENDING
    assert not answered.first_part_claimed


def test_an_empty_answer_is_a_failure_and_is_not_charged() -> None:
    failed = a_turn().answer(AIReply("  \n ", "resp_1", 1, 0), a_conversation(), WHATSAPP, LATER)

    assert isinstance(failed, TurnFailed)
    assert failed.turn.failure_reason == "ai_failed: empty reply"


def test_a_failure_releases_the_hold_and_fails_the_batch_with_the_reason() -> None:
    failed = a_turn().fail("ai_failed: 429 after 4 attempts", LATER)

    assert (failed.before, failed.turn.status, failed.turn.updated_at) == (
        TurnStatus.AWAITING_AI,
        TurnStatus.FAILED,
        LATER,
    )
    assert (failed.release.reserved, failed.release.balance, failed.release.ledger) == (-1, 0, None)
    assert (failed.batch.after, failed.batch.reason) == (S.FAILED, "ai_failed: 429 after 4 attempts")


def test_a_resumed_turn_counts_its_attempts() -> None:
    assert a_turn().resume(LATER).resume(LATER).attempts == 2


@pytest.mark.parametrize("status", [TurnStatus.REPLYING, TurnStatus.DONE, TurnStatus.FAILED])
def test_only_a_turn_awaiting_the_ai_is_answered_failed_or_resumed(status: TurnStatus) -> None:
    turn = a_turn(status)

    with pytest.raises(InvalidTransition):
        turn.answer(REPLY, a_conversation(), WHATSAPP, LATER)
    with pytest.raises(InvalidTransition):
        turn.fail("late", LATER)
    with pytest.raises(InvalidTransition):
        turn.resume(LATER)


@pytest.mark.parametrize("status", [TurnStatus.AWAITING_AI, TurnStatus.DONE, TurnStatus.FAILED])
def test_only_a_replying_turn_finishes(status: TurnStatus) -> None:
    with pytest.raises(InvalidTransition):
        a_turn(status).finish(LATER)


def test_only_awaiting_ai_and_replying_turns_are_open() -> None:
    assert {status for status in TurnStatus if status.open} == {TurnStatus.AWAITING_AI, TurnStatus.REPLYING}


# --- the reply on its way out --------------------------------------------------------------------


def _reply(*parts_: object, claimed: frozenset[int] = frozenset()) -> Reply:
    return Reply(a_turn(TurnStatus.REPLYING), tuple(parts_), claimed)  # type: ignore[arg-type]


def _next(reply: Reply, **changes: object) -> tuple[StepKind, int | None, str | None]:
    conversation = changes.get("conversation", a_conversation())
    policy = changes.get("policy", WHATSAPP)
    step = reply.next_step(
        conversation,  # type: ignore[arg-type]
        policy,  # type: ignore[arg-type]
        changes.get("now", LATER),  # type: ignore[arg-type]
        channel_reachable=changes.get("channel_reachable", True),  # type: ignore[arg-type]
        patience=changes.get("patience"),  # type: ignore[arg-type]
    )
    assert step is not None
    return step.kind, None if step.part is None else step.part.message_id, step.reason


def test_a_pending_part_is_claimed_before_it_is_sent() -> None:
    reply = _reply(a_part(10))

    assert _next(reply) == (StepKind.CLAIM, 10, None)
    claimed, change = reply.claim(reply.parts[0], LATER)
    assert (change.part.status, change.before, change.turn_done) == (S.SENDING, S.PENDING, None)
    assert _next(claimed) == (StepKind.SEND, 10, None)


def test_a_part_left_sending_by_a_stopped_worker_is_failed_as_unknown_never_sent_again() -> None:
    assert _next(_reply(a_part(10, S.SENDING))) == (StepKind.FAIL, 10, DELIVERY_OUTCOME_UNKNOWN)


def test_after_a_failed_part_the_later_parts_fail_too() -> None:
    reply = _reply(a_part(10, S.FAILED), a_part(11))

    assert _next(reply) == (StepKind.FAIL, 11, EARLIER_PART_FAILED)


def test_parts_already_out_are_passed_over() -> None:
    reply = _reply(a_part(10, S.SENT), a_part(11, S.DELIVERED), a_part(12))

    assert _next(reply) == (StepKind.CLAIM, 12, None)


def test_a_part_is_not_sent_once_the_window_closed_or_the_channel_is_gone() -> None:
    reply = _reply(a_part(10))

    assert _next(reply, now=NOW + timedelta(hours=25)) == (StepKind.FAIL, 10, OUTSIDE_SERVICE_WINDOW)
    assert _next(reply, policy=None) == (StepKind.FAIL, 10, CHANNEL_REMOVED)


def test_the_last_parts_outcome_ends_the_turn_in_the_same_change() -> None:
    reply = _reply(a_part(10, S.SENDING), a_part(11, S.SENDING), claimed=frozenset({10, 11}))

    after_first, first = reply.outcome(reply.parts[0].sent("wamid.a", LATER), LATER)
    after_second, second = after_first.outcome(after_first.parts[1].undeliverable("131047", "window", LATER), LATER)

    assert first == PartChange(after_first.parts[0], S.SENDING, None, None)
    assert second.turn_done is not None
    assert (second.turn_done.status, second.turn_before) == (TurnStatus.DONE, TurnStatus.REPLYING)
    assert after_second.next_step(a_conversation(), WHATSAPP, LATER) is None


def test_a_replying_turn_whose_parts_all_have_outcomes_is_finished() -> None:
    reply = _reply(a_part(10, S.SENT))

    assert _next(reply) == (StepKind.FINISH, None, None)
    _, done = reply.finished(LATER)
    assert done.status is TurnStatus.DONE


def test_an_outcome_must_be_one_of_a_part_awaiting_its_send() -> None:
    reply = _reply(a_part(10, S.SENT), a_part(11, S.SENDING))

    with pytest.raises(InvalidTransition):
        reply.outcome(reply.parts[0], LATER)  # it had its outcome already
    with pytest.raises(InvalidTransition):
        reply.outcome(reply.parts[1], LATER)  # still sending: not an outcome
    with pytest.raises(InvalidTransition):
        reply.outcome(a_part(99, S.SENT), LATER)  # not a part of this reply


def test_a_part_of_another_turn_is_never_claimed_through_this_reply() -> None:
    with pytest.raises(InvalidTransition):
        _reply(a_part(10, turn_id=8)).claim(a_part(10, turn_id=8), LATER)


# --- an upstream that cannot be reached ----------------------------------------------------------

HOUR = timedelta(hours=1)


def test_while_the_ai_cannot_be_reached_a_batch_waits_without_a_turn_or_a_hold() -> None:
    postponed = _start(ai_reachable=False, patience=HOUR, now=NOW + timedelta(minutes=59))

    assert postponed == TurnPostponed((4, 5))


def test_a_batch_that_waited_out_the_patience_for_the_ai_is_refused_as_ai_unavailable() -> None:
    refused = _start(ai_reachable=False, patience=HOUR, now=NOW + HOUR)

    assert isinstance(refused, TurnRefused)
    assert refused.reason == AI_UNAVAILABLE


def test_a_batch_that_cannot_be_answered_anyway_is_refused_even_while_the_ai_is_down() -> None:
    refused = _start(ai_reachable=False, patience=HOUR, credits=credits(0))

    assert isinstance(refused, TurnRefused) and refused.reason == INSUFFICIENT_CREDITS


def test_a_turn_whose_ai_call_met_an_outage_keeps_its_hold_and_waits() -> None:
    waiting = a_turn().wait_for_ai("HTTP 503 after 4 attempts", NOW + timedelta(minutes=30), HOUR)

    assert isinstance(waiting, Turn)
    assert (waiting.status, waiting.updated_at, waiting.credits_reserved) == (
        TurnStatus.AWAITING_AI,
        NOW + timedelta(minutes=30),
        1,
    )


def test_a_turn_that_waited_out_the_patience_fails_and_releases_its_hold() -> None:
    failed = a_turn().wait_for_ai("HTTP 503 after 4 attempts", NOW + HOUR, HOUR)

    assert isinstance(failed, TurnFailed)
    assert failed.turn.failure_reason == f"{AI_UNAVAILABLE}: HTTP 503 after 4 attempts"
    assert failed.release.reserved == -1


def test_while_the_channel_cannot_be_reached_a_pending_part_waits_then_fails_as_unavailable() -> None:
    reply = _reply(a_part(10))

    assert _next(reply, channel_reachable=False, patience=HOUR) == (StepKind.WAIT, 10, None)
    assert _next(reply, channel_reachable=False, patience=HOUR, now=NOW + HOUR) == (
        StepKind.FAIL,
        10,
        CHANNEL_UNAVAILABLE,
    )


def test_a_part_the_channel_refused_before_taking_it_goes_back_to_pending() -> None:
    reply = _reply(a_part(10, S.SENDING), claimed=frozenset({10}))

    after, change = reply.not_taken(reply.parts[0], LATER)

    assert (change.part.status, change.before, change.turn_done) == (S.PENDING, S.SENDING, None)
    assert after.claimed == frozenset()
    assert _next(after) == (StepKind.CLAIM, 10, None)


def test_only_a_part_claimed_here_can_be_given_back() -> None:
    with pytest.raises(InvalidTransition):
        _reply(a_part(10, S.SENDING)).not_taken(a_part(10, S.SENDING), LATER)

"""The hand-off's storage contract, on the in-memory and the PostgreSQL adapters alike: a paused bot's
batch is held (only while the bot is still paused as read), held messages are released on resume, and
channels and conversations keep their bot state."""

from __future__ import annotations

import pytest
from attrs import evolve

from application.ports.pipeline import Work
from application.ports.repositories import MessageQuery
from domain.channels import BotState
from domain.conversations import Conversation
from domain.errors import Conflict
from domain.handoff import human_reply, release_held
from domain.messages import BusinessEcho, Direction, Message, MessageStatus, Sender
from domain.tenancy import Route
from domain.turns import Turn, TurnHeld
from tests.integration.test_repository_contract import (
    TWO_PARTS,
    Storage,
    _record,
    _replying,
    _scope,
    _seed,
    _sent_part,
    _top_up,
    _work,
    storage,
)
from tests.support.postgres import NOW, minutes

__all__ = ["storage"]

S = MessageStatus


def _pause(storage: Storage, conversation_id: int, *, until_minutes: int | None = None) -> Conversation:
    with storage.uow() as uow:
        conversation = uow.conversations.lock("user-1", conversation_id)
        assert conversation is not None
        paused = conversation.pause(NOW, None if until_minutes is None else minutes(until_minutes))
        uow.conversations.save_bot(paused)
        uow.commit()
    return paused


def _held_decision(work: Work, route: Route) -> TurnHeld:
    decision = Turn.start(work.conversation, work.messages, route, work.credits, 1, NOW)
    assert isinstance(decision, TurnHeld), decision
    return decision


def test_a_paused_conversation_holds_its_batch_without_touching_credits(storage: Storage) -> None:
    route = _seed(storage.uow)
    _top_up(storage.uow, 5)
    recorded = _record(storage, route, "wamid.1")
    _pause(storage, recorded.conversation_id)
    work = _work(storage, _scope(recorded.conversation_id))

    assert storage.turns.hold(_held_decision(work, route))

    assert storage.peek.message(recorded.message_id).status is S.HELD
    assert storage.turns.next_work(_scope(recorded.conversation_id)) is None
    assert not storage.turns.has_pending(_scope(recorded.conversation_id))
    with storage.uow() as uow:
        assert uow.credits.get("user-1").available == 5


def test_a_batch_is_not_held_when_the_bot_was_resumed_since_it_was_read(storage: Storage) -> None:
    route = _seed(storage.uow)
    recorded = _record(storage, route, "wamid.1")
    _pause(storage, recorded.conversation_id)
    decision = _held_decision(_work(storage, _scope(recorded.conversation_id)), route)
    with storage.uow() as uow:
        conversation = uow.conversations.lock("user-1", recorded.conversation_id)
        assert conversation is not None
        uow.conversations.save_bot(conversation.resume())
        uow.commit()

    assert not storage.turns.hold(decision)
    assert storage.peek.message(recorded.message_id).status is S.RECEIVED


def test_a_paused_channel_holds_the_batch_of_an_active_conversation(storage: Storage) -> None:
    route = _seed(storage.uow)
    recorded = _record(storage, route, "wamid.1")
    paused = route.channel.update(bot=BotState.PAUSED)
    with storage.uow() as uow:
        uow.channels.update(paused)
        uow.commit()
    paused_route = evolve(route, channel=paused)

    assert storage.turns.hold(_held_decision(_work(storage, _scope(recorded.conversation_id)), paused_route))
    assert storage.peek.message(recorded.message_id).status is S.HELD
    with storage.uow() as uow:
        assert uow.conversations.holding("pn-1") == [recorded.conversation_id]
        assert uow.channels.route("pn-1") == paused_route


def test_held_messages_after_the_last_reply_go_back_to_the_ai_on_resume(storage: Storage) -> None:
    route = _seed(storage.uow)
    conversation_id = _sent_part(storage, route).conversation_id
    _pause(storage, conversation_id)
    later = _record(storage, route, "wamid.2")
    assert storage.turns.hold(_held_decision(_work(storage, _scope(conversation_id)), route))

    with storage.uow() as uow:
        conversation = uow.conversations.lock("user-1", conversation_id)
        assert conversation is not None
        active = conversation.resume()
        uow.conversations.save_bot(active)
        held = uow.conversations.held(conversation_id)
        last_reply = uow.conversations.last_reply_sequence_no(conversation_id)
        resumed = release_held(active, held, last_reply, NOW)
        uow.conversations.change_status(resumed.to_answer, NOW)
        uow.conversations.change_status(resumed.answered, NOW)
        uow.commit()

    assert [m.message_id for m in held] == [later.message_id]
    assert last_reply == 2
    assert storage.peek.message(later.message_id).status is S.RECEIVED
    assert [m.message_id for m in _work(storage, _scope(conversation_id)).messages] == [later.message_id]
    with storage.uow() as uow:
        stored = uow.conversations.get(conversation_id)
    assert stored is not None
    assert (stored.bot, stored.bot_paused_until) == (BotState.ACTIVE, None)


def test_only_timed_pauses_that_ran_out_are_found(storage: Storage) -> None:
    route = _seed(storage.uow)
    ann = _record(storage, route, "wamid.1", customer_id="ann")
    bob = _record(storage, route, "wamid.2", customer_id="bob")
    cid = _record(storage, route, "wamid.3", customer_id="cid")
    _pause(storage, ann.conversation_id, until_minutes=5)
    _pause(storage, bob.conversation_id, until_minutes=60)
    _pause(storage, cid.conversation_id)

    assert storage.turns.pauses_run_out(NOW + minutes(10), 10) == [("user-1", ann.conversation_id)]
    assert storage.turns.pauses_run_out(NOW + minutes(1), 10) == []


def test_a_channel_update_keeps_name_token_and_bot_and_is_locked_only_by_its_tenant(storage: Storage) -> None:
    route = _seed(storage.uow)
    _seed(storage.uow, "user-2", "pn-2")
    changed = route.channel.update(display_name="Front desk", access_token="EAAG-rotated-token", bot=BotState.PAUSED)
    with storage.uow() as uow:
        assert uow.channels.lock("user-2", "pn-1") is None
        assert uow.channels.lock("user-1", "pn-1") == route.channel
        uow.channels.update(changed)
        uow.commit()

    with storage.uow() as uow:
        assert uow.channels.get("user-1", "pn-1") == changed


def test_a_conversation_is_locked_only_by_its_tenant(storage: Storage) -> None:
    route = _seed(storage.uow)
    recorded = _record(storage, route, "wamid.1")

    with storage.uow() as uow:
        assert uow.conversations.lock("user-2", recorded.conversation_id) is None
        assert uow.conversations.lock("user-1", recorded.conversation_id) is not None


def _human_reply(storage: Storage, conversation_id: int, text: str, key: str | None) -> tuple[Message, ...]:
    with storage.uow() as uow:
        conversation = uow.conversations.lock("user-1", conversation_id)
        assert conversation is not None
        parts = uow.messages.add_human_reply(human_reply(conversation, TWO_PARTS, text, NOW), key)
        uow.commit()
    return parts


def test_a_human_reply_is_numbered_after_every_message_and_pauses_the_conversation(storage: Storage) -> None:
    route = _seed(storage.uow)
    recorded = _record(storage, route, "wamid.1")

    parts = _human_reply(storage, recorded.conversation_id, "part one part two", "key-1")

    assert [(p.sequence_no, p.sender, p.direction, p.status, p.text) for p in parts] == [
        (2, Sender.HUMAN, Direction.OUTBOUND, S.PENDING, "part one"),
        (3, Sender.HUMAN, Direction.OUTBOUND, S.PENDING, "part two"),
    ]
    assert storage.peek.message(parts[1].message_id) == parts[1]
    with storage.uow() as uow:
        conversation = uow.conversations.get(recorded.conversation_id)
        assert uow.messages.human_reply(recorded.conversation_id, "key-1") == parts
        assert uow.messages.human_reply(recorded.conversation_id, "key-2") == ()
        assert uow.conversations.last_reply_sequence_no(recorded.conversation_id) == 3
    assert conversation is not None
    assert (conversation.last_sequence_no, conversation.bot) == (3, BotState.PAUSED)
    assert _record(storage, route, "wamid.2").sequence_no == 4


def test_an_idempotency_key_used_before_in_the_conversation_is_a_conflict(storage: Storage) -> None:
    route = _seed(storage.uow)
    recorded = _record(storage, route, "wamid.1")
    _human_reply(storage, recorded.conversation_id, "hello", "key-1")

    with pytest.raises(Conflict):
        _human_reply(storage, recorded.conversation_id, "hello again", "key-1")


def test_the_ai_has_seen_its_answer_and_the_next_work_carries_what_came_since_that_is_not_its_own(
    storage: Storage,
) -> None:
    route = _seed(storage.uow)
    conversation_id = _sent_part(storage, route).conversation_id
    assert _conversation_of(storage, conversation_id).ai_seen_sequence_no == 2
    _human_reply(storage, conversation_id, "a person", None)
    later = _record(storage, route, "wamid.2")

    work = _work(storage, _scope(conversation_id))

    assert [m.message_id for m in work.messages] == [later.message_id]
    assert [(m.sequence_no, m.sender) for m in work.context] == [(3, Sender.HUMAN)]


def _conversation_of(storage: Storage, conversation_id: int) -> Conversation:
    with storage.uow() as uow:
        conversation = uow.conversations.get(conversation_id)
    assert conversation is not None
    return conversation


def _echo(platform_message_id: str, customer_id: str = "15550001", text: str = "from the shop's phone") -> BusinessEcho:
    return BusinessEcho("pn-1", platform_message_id, customer_id, "text", text, NOW, {"id": platform_message_id})


def test_an_echo_is_stored_once_as_a_sent_human_message_that_takes_the_conversation_over(storage: Storage) -> None:
    route = _seed(storage.uow)
    recorded = _record(storage, route, "wamid.1", customer_id="15550001")

    echoed = storage.messages.record_echo(route, _echo("wamid.echo"), NOW)
    again = storage.messages.record_echo(route, _echo("wamid.echo"), NOW)

    assert (echoed.conversation_id, echoed.sequence_no, echoed.duplicate) == (recorded.conversation_id, 2, False)
    assert (again.message_id, again.duplicate) == (echoed.message_id, True)
    stored = storage.peek.message(echoed.message_id)
    assert (stored.sender, stored.direction, stored.status, stored.text) == (
        Sender.HUMAN,
        Direction.OUTBOUND,
        S.SENT,
        "from the shop's phone",
    )
    conversation = _conversation_of(storage, recorded.conversation_id)
    assert (conversation.last_sequence_no, conversation.bot, conversation.bot_paused_until) == (
        2,
        BotState.PAUSED,
        None,
    )


def test_an_echo_of_a_part_being_sent_is_our_own_send_neither_stored_nor_pausing(storage: Storage) -> None:
    route = _seed(storage.uow)
    _, [part] = _replying(storage, route, "hi")
    assert part.status is S.SENDING  # claimed and committed, the channel not answered yet

    recorded = storage.messages.record_echo(route, _echo("mid.ours", customer_id="customer-1", text="hi"), NOW)

    assert recorded is None
    conversation = _conversation_of(storage, part.conversation_id)
    assert (conversation.bot, conversation.last_sequence_no) == (BotState.ACTIVE, 2)
    with storage.uow() as uow:
        stored = uow.messages.list("user-1", MessageQuery(limit=10)).items
    assert [m.direction for m in stored] == [Direction.OUTBOUND, Direction.INBOUND]  # the part and the question


def test_an_echo_with_the_text_of_a_part_no_longer_in_flight_is_the_business_typing_it(storage: Storage) -> None:
    route = _seed(storage.uow)
    part = _sent_part(storage, route, "mid.ours")

    typed = storage.messages.record_echo(route, _echo("mid.typed", customer_id="customer-1", text="hi"), NOW)

    assert typed is not None
    assert (typed.conversation_id, typed.sequence_no, typed.duplicate) == (part.conversation_id, 3, False)
    assert storage.peek.message(typed.message_id).sender is Sender.HUMAN
    assert _conversation_of(storage, part.conversation_id).bot is BotState.PAUSED


def test_an_echo_whose_id_the_worker_stored_is_a_duplicate_of_the_part(storage: Storage) -> None:
    route = _seed(storage.uow)
    part = _sent_part(storage, route, "mid.ours")

    again = storage.messages.record_echo(route, _echo("mid.ours", customer_id="customer-1", text="hi"), NOW)

    assert again is not None
    assert (again.message_id, again.duplicate) == (part.message_id, True)
    assert _conversation_of(storage, part.conversation_id).bot is BotState.ACTIVE


def test_a_part_being_sent_to_one_customer_does_not_hide_an_echo_to_another_with_its_text(storage: Storage) -> None:
    route = _seed(storage.uow)
    _, [part] = _replying(storage, route, "hi")

    other = storage.messages.record_echo(route, _echo("mid.typed", customer_id="customer-2", text="hi"), NOW)

    assert other is not None
    assert other.conversation_id != part.conversation_id
    assert _conversation_of(storage, other.conversation_id).bot is BotState.PAUSED
    assert _conversation_of(storage, part.conversation_id).bot is BotState.ACTIVE


def test_an_echo_keeps_a_timed_pause_in_place_and_opens_a_paused_conversation_for_a_new_customer(
    storage: Storage,
) -> None:
    route = _seed(storage.uow)
    recorded = _record(storage, route, "wamid.1", customer_id="15550001")
    paused = _pause(storage, recorded.conversation_id, until_minutes=30)

    storage.messages.record_echo(route, _echo("wamid.echo1"), NOW)
    opened = storage.messages.record_echo(route, _echo("wamid.echo2", customer_id="15550002"), NOW)

    assert _conversation_of(storage, recorded.conversation_id).bot_paused_until == paused.bot_paused_until
    new = _conversation_of(storage, opened.conversation_id)
    assert (new.customer_id, new.bot, new.last_sequence_no, opened.sequence_no) == (
        "15550002",
        BotState.PAUSED,
        1,
        1,
    )

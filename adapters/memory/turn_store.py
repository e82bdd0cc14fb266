"""The worker's storage in memory: pending work, and the turns answering it.

Each method applies what the domain decided, conditional on the state the decision started from,
under the store's lock; a change the domain refuses (credits that would go negative) undoes itself.
"""

from __future__ import annotations

import itertools
from datetime import datetime

from attrs import evolve

from adapters.memory.tables import NEVER, InMemoryStore, Tables
from application.ports.pipeline import CONTEXT_LIMIT, Work
from domain.conversations import Conversation
from domain.credits import Credits
from domain.errors import InsufficientCredits
from domain.messages import Direction, Message, MessageStatus, OrderingScope, ScopeKey, Sender
from domain.turns import (
    PartChange,
    PartDraft,
    Turn,
    TurnAnswered,
    TurnFailed,
    TurnHeld,
    TurnRefused,
    TurnStarted,
    TurnStatus,
)


class InMemoryTurnStore:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    # --- reading ----------------------------------------------------------------------------------

    def next_work(self, scope: ScopeKey) -> Work | None:
        with self._store.lock:
            t = self._store.tables
            open_turn = min((turn for turn in _scope_turns(t, scope) if turn.status.open), default=None, key=_turn_id)
            if open_turn is not None:
                messages = _turn_messages(t, open_turn)
                conversation = t.conversations[open_turn.conversation_id]
            else:
                messages = _pending_batch(t, scope)
                if not messages:
                    return None
                conversation = t.conversations[messages[0].conversation_id]
            credits = t.credits.get(conversation.user_id) or Credits.none(conversation.user_id, NEVER)
            context: tuple[Message, ...] = ()
            if messages and (open_turn is None or open_turn.status is TurnStatus.AWAITING_AI):
                context = _context(t, conversation, messages[0].sequence_no)
            return Work(conversation, credits, open_turn, messages, context)

    def has_pending(self, scope: ScopeKey) -> bool:
        with self._store.lock:
            return bool(_received(self._store.tables, scope))

    def stalled_scopes(self, ordering: OrderingScope, older_than: datetime, limit: int) -> list[ScopeKey]:
        with self._store.lock:
            t = self._store.tables
            stalled = [
                (m.conversation_id, m.phone_number_id, m.created_at)
                for m in t.messages.values()
                if m.status is MessageStatus.RECEIVED and m.created_at < older_than
            ]
            stalled += [
                (turn.conversation_id, turn.phone_number_id, turn.updated_at)
                for turn in t.turns.values()
                if turn.status.open and turn.updated_at < older_than
            ]
        since: dict[ScopeKey, datetime] = {}
        for conversation_id, phone_number_id, at in stalled:
            key = ScopeKey.parse(ordering.key(conversation_id=conversation_id, phone_number_id=phone_number_id))
            since[key] = min(at, since.get(key, at))
        return sorted(since, key=lambda key: since[key])[:limit]

    # --- saving what the domain decided -----------------------------------------------------------

    def start(self, started: TurnStarted) -> Turn | None:
        try:
            with self._store.atomic() as t:
                if not _still_pending(t, started):
                    return None
                turn = started.turn(t.next_id("turns"))
                t.turns[turn.turn_id] = turn
                t.move_credits(started.hold, started.at)
                t.change_status(started.batch, started.at, turn_id=turn.turn_id)
                return turn
        except InsufficientCredits:
            return None

    def refuse(self, refused: TurnRefused) -> None:
        with self._store.atomic() as t:
            t.change_status(refused.batch, refused.at)

    def hold(self, held: TurnHeld) -> bool:
        read = held.conversation
        with self._store.atomic() as t:
            conversation = t.conversations.get(read.conversation_id)
            channel = t.channels.get(read.phone_number_id)
            if (
                conversation is None
                or channel is None
                or (conversation.bot, conversation.bot_paused_until) != (read.bot, read.bot_paused_until)
                or channel.bot is not held.channel_bot
            ):
                return False
            t.change_status(held.batch, held.at)
            return True

    def pauses_run_out(self, now: datetime, limit: int) -> list[tuple[str, int]]:
        with self._store.lock:
            t = self._store.tables
            ended = [c for c in t.conversations.values() if c.paused_run_out(now)]
        ended.sort(key=lambda c: (c.bot_paused_until, c.conversation_id))
        return [(c.user_id, c.conversation_id) for c in ended[:limit]]

    def save_turn(self, turn: Turn, before: TurnStatus) -> bool:
        with self._store.atomic() as t:
            if not _is(t, turn.turn_id, before):
                return False
            t.turns[turn.turn_id] = turn
            return True

    def link_ai(self, conversation: Conversation) -> None:
        with self._store.atomic() as t:
            current = t.conversations[conversation.conversation_id]
            if current.openai_conversation_id is None:
                t.conversations[conversation.conversation_id] = evolve(
                    current, openai_conversation_id=conversation.openai_conversation_id
                )

    def answer(self, answered: TurnAnswered) -> tuple[Message, ...] | None:
        turn, now = answered.turn, answered.turn.updated_at
        with self._store.atomic() as t:
            if not _is(t, turn.turn_id, answered.before):
                return None
            t.turns[turn.turn_id] = turn
            conversation = t.conversations[turn.conversation_id]
            appended = conversation.append(len(answered.parts), now)
            parts = tuple(
                _part(t, turn, conversation.last_sequence_no + n, draft)
                for n, draft in enumerate(answered.parts, start=1)
            )
            t.messages.update((part.message_id, part) for part in parts)
            appended = evolve(appended, ai_seen_sequence_no=appended.last_sequence_no)
            if answered.last_item_id is not None:
                appended = evolve(appended, openai_last_item_id=answered.last_item_id)
            t.conversations[conversation.conversation_id] = appended
            t.change_status(answered.batch, now)
            t.move_credits(answered.charge, now)
            return parts

    def fail(self, failed: TurnFailed) -> bool:
        turn, now = failed.turn, failed.turn.updated_at
        with self._store.atomic() as t:
            if not _is(t, turn.turn_id, failed.before):
                return False
            t.turns[turn.turn_id] = turn
            t.move_credits(failed.release, now)
            t.change_status(failed.batch, now)
            return True

    def save_part(self, change: PartChange) -> bool:
        part = change.part
        with self._store.atomic() as t:
            current = t.messages.get(part.message_id)
            if current is None or current.direction is not Direction.OUTBOUND or current.status is not change.before:
                return False
            t.messages[part.message_id] = part
            if part.platform_message_id is not None:
                t.platform_ids[(part.phone_number_id, part.platform_message_id)] = part.message_id
            done, was = change.turn_done, change.turn_before
            if done is not None and was is not None and _is(t, done.turn_id, was):
                t.turns[done.turn_id] = done
            return True


def _turn_id(turn: Turn) -> int:
    return turn.turn_id


def _still_pending(t: Tables, started: TurnStarted) -> bool:
    """Whether the batch is still where it was read: its conversation active, its messages in it, pending
    (a relink archives conversations and carries their messages over)."""
    conversation = t.conversations.get(started.conversation_id)
    if conversation is None or not conversation.is_active:
        return False
    messages = (t.messages.get(message_id) for message_id in started.batch.message_ids)
    return all(
        m is not None and m.conversation_id == started.conversation_id and m.status is started.batch.before
        for m in messages
    )


def _is(t: Tables, turn_id: int, status: TurnStatus) -> bool:
    turn = t.turns.get(turn_id)
    return turn is not None and turn.status is status


def _scope_turns(t: Tables, scope: ScopeKey) -> list[Turn]:
    if scope.kind is OrderingScope.CONVERSATION:
        return [turn for turn in t.turns.values() if turn.conversation_id == int(scope.value)]
    return [turn for turn in t.turns.values() if turn.phone_number_id == scope.value]


def _turn_messages(t: Tables, turn: Turn) -> tuple[Message, ...]:
    """A turn awaiting the AI: its inbound messages; a replying one: its reply's parts."""
    if turn.status is TurnStatus.AWAITING_AI:
        found = t.of_direction(turn.inbound_ids, Direction.INBOUND)
    else:
        found = [m for m in t.messages.values() if m.turn_id == turn.turn_id and m.direction is Direction.OUTBOUND]
    return tuple(sorted(found, key=lambda m: m.sequence_no))


def _received(t: Tables, scope: ScopeKey) -> list[Message]:
    if scope.kind is OrderingScope.CONVERSATION:
        conversation_id = int(scope.value)
        found = [
            m
            for m in t.messages.values()
            if m.conversation_id == conversation_id and m.status is MessageStatus.RECEIVED
        ]
        return sorted(found, key=lambda m: m.sequence_no)
    found = [m for m in t.messages.values() if m.phone_number_id == scope.value and m.status is MessageStatus.RECEIVED]
    return sorted(found, key=lambda m: m.message_id)


def _pending_batch(t: Tables, scope: ScopeKey) -> tuple[Message, ...]:
    """The scope's received messages in order, cut at the first message of another conversation."""
    received = _received(t, scope)
    if not received:
        return ()
    head = received[0].conversation_id
    return tuple(itertools.takewhile(lambda m: m.conversation_id == head, received))


def _context(t: Tables, conversation: Conversation, before: int) -> tuple[Message, ...]:
    found = [
        m
        for m in t.messages.values()
        if m.conversation_id == conversation.conversation_id
        and conversation.ai_seen_sequence_no < m.sequence_no < before
        and m.sender is not Sender.AI
    ]
    return tuple(sorted(found, key=lambda m: m.sequence_no)[-CONTEXT_LIMIT:])


def _part(t: Tables, turn: Turn, sequence_no: int, draft: PartDraft) -> Message:
    now = turn.updated_at
    return Message(
        message_id=t.next_id("messages"),
        user_id=turn.user_id,
        conversation_id=turn.conversation_id,
        phone_number_id=turn.phone_number_id,
        direction=Direction.OUTBOUND,
        sender=Sender.AI,
        sequence_no=sequence_no,
        platform_message_id=None,
        content_type="text",
        text=draft.text,
        status=draft.status,
        failure_reason=None,
        failure_code=None,
        turn_id=turn.turn_id,
        input_tokens=draft.input_tokens,
        output_tokens=draft.output_tokens,
        sent_at=None,
        created_at=now,
        updated_at=now,
    )

"""In-memory storage: a unit of work and repositories over plain dicts.

Used by the fast unit tests and by the zero-setup dev mode. Entities are frozen, so a transaction
snapshots the dicts (pointer copies) and rollback restores them. One lock serialises transactions,
which is what Postgres' row locks give the real adapter for the operations the pipeline makes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from attrs import define, evolve, field

from application.ports.repositories import (
    AgentsRepository,
    ChannelsRepository,
    ConversationsRepository,
    CreditsRepository,
    MessageQuery,
    MessagesRepository,
    Page,
    TurnsRepository,
    UsersRepository,
)
from domain.credits import Credits, LedgerEntry, LedgerKind
from domain.errors import Conflict, NotFound, ValidationFailed
from domain.messages import (
    Conversation,
    DeliveryReport,
    Direction,
    InboundMessage,
    Message,
    MessageStatus,
    OrderingScope,
    RecordedInbound,
    ScopeKey,
    next_delivery_status,
)
from domain.tenancy import Agent, Channel, Route, User
from domain.turns import AIReply, Turn, TurnStatus


@define
class _Tables:
    users: dict[str, User] = field(factory=dict)
    channels: dict[str, Channel] = field(factory=dict)
    agents: dict[str, Agent] = field(factory=dict)
    credits: dict[str, Credits] = field(factory=dict)
    ledger: dict[int, LedgerEntry] = field(factory=dict)
    idempotency: dict[tuple[str, str], int] = field(factory=dict)
    conversations: dict[int, Conversation] = field(factory=dict)
    sequences: dict[int, int] = field(factory=dict)
    messages: dict[int, Message] = field(factory=dict)
    platform_ids: dict[tuple[str, str], int] = field(factory=dict)
    turns: dict[int, Turn] = field(factory=dict)
    counters: dict[str, int] = field(factory=dict)

    def next_id(self, name: str) -> int:
        self.counters[name] = self.counters.get(name, 0) + 1
        return self.counters[name]

    def copy(self) -> _Tables:
        """A copy a rollback can restore: entities are frozen, so copying the dicts is enough."""
        return _Tables(**{attribute.name: dict(getattr(self, attribute.name)) for attribute in _Tables.__attrs_attrs__})


class InMemoryStore:
    """The shared state behind every InMemoryUnitOfWork of one process."""

    def __init__(self) -> None:
        self.tables = _Tables()
        self.lock = threading.RLock()


class InMemoryUnitOfWork:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self._saved: _Tables | None = None
        self.committed = 0
        # Typed as the ports: a Protocol's attributes are invariant, so `_Users` would not match `UnitOfWork`.
        self.users: UsersRepository = _Users(store)
        self.channels: ChannelsRepository = _Channels(store)
        self.agents: AgentsRepository = _Agents(store)
        self.credits: CreditsRepository = _CreditsRepo(store)
        self.conversations: ConversationsRepository = _Conversations(store)
        self.messages: MessagesRepository = _Messages(store)
        self.turns: TurnsRepository = _Turns(store)

    def __enter__(self) -> Self:
        self._store.lock.acquire()
        self._saved = self._store.tables.copy()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._saved is not None:
                self._store.tables = self._saved
        finally:
            self._saved = None
            self._store.lock.release()

    def commit(self) -> None:
        self._saved = self._store.tables.copy()
        self.committed += 1


class _Repo:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    @property
    def t(self) -> _Tables:
        return self._store.tables


class _Users(_Repo):
    def add(self, user: User) -> None:
        # The unique keys of the users table, checked in the order PostgreSQL reports them.
        if user.user_id in self.t.users:
            raise Conflict(f"user {user.user_id} exists already", field="user_id")
        if any(existing.email == user.email for existing in self.t.users.values()):
            raise Conflict(f"the e-mail {user.email} is taken", field="email")
        if any(existing.api_key_hash == user.api_key_hash for existing in self.t.users.values()):
            raise Conflict("that API key is in use already", field="api_key")
        self.t.users[user.user_id] = user

    def get(self, user_id: str) -> User | None:
        return self.t.users.get(user_id)

    def by_api_key_hash(self, api_key_hash: str) -> User | None:
        return next((u for u in self.t.users.values() if u.api_key_hash == api_key_hash), None)


class _Channels(_Repo):
    def add(self, channel: Channel) -> None:
        if channel.phone_number_id in self.t.channels:
            raise Conflict(f"phone_number_id {channel.phone_number_id} is registered already", field="phone_number_id")
        self.t.channels[channel.phone_number_id] = channel

    def get(self, user_id: str, phone_number_id: str) -> Channel | None:
        channel = self.t.channels.get(phone_number_id)
        return channel if channel is not None and channel.user_id == user_id else None

    def list(self, user_id: str) -> list[Channel]:
        return sorted(
            (c for c in self.t.channels.values() if c.user_id == user_id),
            key=lambda c: (c.created_at, c.phone_number_id),
        )

    def route(self, phone_number_id: str) -> Route | None:
        channel = self.t.channels.get(phone_number_id)
        if channel is None:
            return None
        agent = next((a for a in self.t.agents.values() if a.phone_number_id == phone_number_id), None)
        return Route(channel=channel, agent=agent)


class _Agents(_Repo):
    def add(self, agent: Agent) -> None:
        if agent.agent_id in self.t.agents:
            raise Conflict(f"agent {agent.agent_id} exists already", field="agent_id")
        if any(a.phone_number_id == agent.phone_number_id for a in self.t.agents.values()):
            raise Conflict(f"channel {agent.phone_number_id} already has an agent", field="phone_number_id")
        self.t.agents[agent.agent_id] = agent

    def get(self, user_id: str, agent_id: str) -> Agent | None:
        agent = self.t.agents.get(agent_id)
        return agent if agent is not None and agent.user_id == user_id else None

    def list(self, user_id: str) -> list[Agent]:
        return sorted(
            (a for a in self.t.agents.values() if a.user_id == user_id), key=lambda a: (a.created_at, a.agent_id)
        )


class _CreditsRepo(_Repo):
    def get(self, user_id: str) -> Credits:
        return self.t.credits.get(user_id) or Credits(user_id=user_id, balance=0, reserved=0, updated_at=_EPOCH)

    def top_up(
        self, user_id: str, amount: int, reason: str | None, idempotency_key: str | None, now: datetime
    ) -> LedgerEntry:
        if idempotency_key is not None and (user_id, idempotency_key) in self.t.idempotency:
            return self.t.ledger[self.t.idempotency[(user_id, idempotency_key)]]
        credits = self.get(user_id)
        credits = evolve(credits, balance=credits.balance + amount, updated_at=now)
        self.t.credits[user_id] = credits
        entry = self._append(user_id, LedgerKind.TOP_UP, amount, credits.balance, reason, None, now)
        if idempotency_key is not None:
            self.t.idempotency[(user_id, idempotency_key)] = entry.entry_id
        return entry

    def reserve(self, user_id: str, amount: int, now: datetime) -> bool:
        credits = self.t.credits.get(user_id)
        if credits is None or not credits.can_reserve(amount):
            return False
        self.t.credits[user_id] = evolve(credits, reserved=credits.reserved + amount, updated_at=now)
        return True

    def release(self, user_id: str, amount: int, now: datetime) -> None:
        credits = self.t.credits.get(user_id)
        if credits is None:
            return  # as in PostgreSQL: no account, no hold, nothing to update
        if amount > credits.reserved:
            raise Conflict(f"cannot release {amount} credits: less than that is held")
        self.t.credits[user_id] = evolve(credits, reserved=credits.reserved - amount, updated_at=now)

    def charge(self, user_id: str, amount: int, turn_id: int, now: datetime) -> LedgerEntry:
        existing = next(
            (e for e in self.t.ledger.values() if e.turn_id == turn_id and e.kind is LedgerKind.CHARGE), None
        )
        if existing is not None:
            return existing
        credits = self.t.credits.get(user_id)
        if credits is None:
            raise Conflict(f"user {user_id} has no credits account")
        if amount > credits.reserved:
            raise Conflict(f"cannot charge {amount} credits for turn {turn_id}: less than that is held")
        credits = evolve(credits, balance=credits.balance - amount, reserved=credits.reserved - amount, updated_at=now)
        self.t.credits[user_id] = credits
        return self._append(user_id, LedgerKind.CHARGE, -amount, credits.balance, "ai_turn", turn_id, now)

    def ledger(self, user_id: str, limit: int) -> list[LedgerEntry]:
        entries = [e for e in self.t.ledger.values() if e.user_id == user_id]
        return sorted(entries, key=lambda e: e.entry_id, reverse=True)[:limit]

    def _append(
        self,
        user_id: str,
        kind: LedgerKind,
        amount: int,
        balance_after: int,
        reason: str | None,
        turn_id: int | None,
        now: datetime,
    ) -> LedgerEntry:
        entry = LedgerEntry(
            entry_id=self.t.next_id("ledger"),
            user_id=user_id,
            kind=kind,
            amount=amount,
            balance_after=balance_after,
            reason=reason,
            turn_id=turn_id,
            created_at=now,
        )
        self.t.ledger[entry.entry_id] = entry
        return entry


class _Conversations(_Repo):
    def get(self, conversation_id: int) -> Conversation | None:
        return self.t.conversations.get(conversation_id)

    def set_openai_conversation(self, conversation_id: int, openai_conversation_id: str) -> None:
        conversation = self.t.conversations[conversation_id]
        self.t.conversations[conversation_id] = evolve(conversation, openai_conversation_id=openai_conversation_id)

    def set_openai_last_item(self, conversation_id: int, item_id: str | None) -> None:
        conversation = self.t.conversations[conversation_id]
        self.t.conversations[conversation_id] = evolve(conversation, openai_last_item_id=item_id)

    def next_sequence(self, conversation_id: int) -> int:
        self.t.sequences[conversation_id] = self.t.sequences.get(conversation_id, 0) + 1
        return self.t.sequences[conversation_id]


class _Messages(_Repo):
    def record_inbound(self, route: Route, inbound: InboundMessage, now: datetime) -> RecordedInbound:
        if route.agent is None:
            raise ValueError("record_inbound needs a channel with an agent")
        # A redelivery neither burns a sequence number nor opens a conversation (as in Postgres).
        phone_number_id = route.channel.phone_number_id
        existing_id = self.t.platform_ids.get((phone_number_id, inbound.platform_message_id))
        if existing_id is not None:
            existing = self.t.messages[existing_id]
            return RecordedInbound(existing.message_id, existing.conversation_id, existing.sequence_no, duplicate=True)
        conversation = self._active_conversation(route, inbound, now)
        sequence_no = _Conversations(self._store).next_sequence(conversation.conversation_id)
        last_customer = conversation.last_customer_message_at
        self.t.conversations[conversation.conversation_id] = evolve(
            conversation,
            last_message_at=max(conversation.last_message_at, now),
            last_customer_message_at=inbound.sent_at if last_customer is None else max(last_customer, inbound.sent_at),
            customer_name=inbound.customer_name or conversation.customer_name,
        )
        message = Message(
            message_id=self.t.next_id("messages"),
            user_id=route.user_id,
            conversation_id=conversation.conversation_id,
            phone_number_id=phone_number_id,
            direction=Direction.INBOUND,
            sequence_no=sequence_no,
            platform_message_id=inbound.platform_message_id,
            content_type=inbound.content_type,
            text=inbound.text,
            status=MessageStatus.RECEIVED if inbound.answerable else MessageStatus.SKIPPED,
            failure_reason=None if inbound.answerable else inbound.skip_reason,
            failure_code=None,
            turn_id=None,
            input_tokens=None,
            output_tokens=None,
            sent_at=inbound.sent_at,
            created_at=now,
            updated_at=now,
        )
        self.t.messages[message.message_id] = message
        self.t.platform_ids[(phone_number_id, inbound.platform_message_id)] = message.message_id
        return RecordedInbound(message.message_id, message.conversation_id, message.sequence_no, duplicate=False)

    def _active_conversation(self, route: Route, inbound: InboundMessage, now: datetime) -> Conversation:
        assert route.agent is not None
        for conversation in self.t.conversations.values():
            if (
                conversation.is_active
                and conversation.agent_id == route.agent.agent_id
                and conversation.customer_id == inbound.customer_id
            ):
                return conversation
        conversation = Conversation(
            conversation_id=self.t.next_id("conversations"),
            user_id=route.user_id,
            agent_id=route.agent.agent_id,
            phone_number_id=route.channel.phone_number_id,
            customer_id=inbound.customer_id,
            customer_name=inbound.customer_name,
            openai_conversation_id=None,
            openai_last_item_id=None,
            is_active=True,
            created_at=now,
            last_message_at=now,
            last_customer_message_at=None,
        )
        self.t.conversations[conversation.conversation_id] = conversation
        return conversation

    def apply_delivery_report(self, report: DeliveryReport, now: datetime) -> bool:
        message_id = self.t.platform_ids.get((report.phone_number_id, report.platform_message_id))
        if message_id is None or self.t.messages[message_id].direction is not Direction.OUTBOUND:
            return False
        message = self.t.messages[message_id]
        status = next_delivery_status(message.status, report.status)
        if status is None and report.error_code is None and report.error_reason is None:
            return True  # nothing to change, not even updated_at
        changes: dict[str, Any] = {"updated_at": now}
        if status is not None:
            changes["status"] = status
            if status in _DELIVERED_STATUSES and message.sent_at is None:
                changes["sent_at"] = report.at
        # A report's missing part keeps what an earlier report said.
        if report.error_code is not None:
            changes["failure_code"] = report.error_code
        if report.error_reason is not None:
            changes["failure_reason"] = report.error_reason
        self.t.messages[message_id] = evolve(message, **changes)
        return True

    def _received(self, scope: ScopeKey) -> list[Message]:
        if scope.kind is OrderingScope.CONVERSATION:
            conversation_id = int(scope.value)
            found = [
                m
                for m in self.t.messages.values()
                if m.conversation_id == conversation_id and m.status is MessageStatus.RECEIVED
            ]
            return sorted(found, key=lambda m: m.sequence_no)
        found = [
            m
            for m in self.t.messages.values()
            if m.phone_number_id == scope.value and m.status is MessageStatus.RECEIVED
        ]
        return sorted(found, key=lambda m: m.message_id)

    def pending_batch(self, scope: ScopeKey) -> list[Message]:
        received = self._received(scope)
        if not received:
            return []
        first_conversation = received[0].conversation_id
        batch: list[Message] = []
        for message in received:
            if message.conversation_id != first_conversation:
                break
            batch.append(message)
        return batch

    def has_pending(self, scope: ScopeKey) -> bool:
        return bool(self._received(scope))

    def get_many(self, message_ids: Sequence[int]) -> list[Message]:
        found = (self.t.messages[i] for i in set(message_ids) if i in self.t.messages)
        return sorted(found, key=lambda m: (m.conversation_id, m.sequence_no))

    def mark_inbound(
        self,
        message_ids: Sequence[int],
        status: MessageStatus,
        now: datetime,
        *,
        failure_reason: str | None = None,
        failure_code: str | None = None,
    ) -> None:
        for message in _of_direction(self.t, message_ids, Direction.INBOUND):
            self.t.messages[message.message_id] = evolve(
                message, status=status, failure_reason=failure_reason, failure_code=failure_code, updated_at=now
            )

    def add_outbound(
        self, conversation: Conversation, turn_id: int, texts: Sequence[str], reply: AIReply, now: datetime
    ) -> list[Message]:
        sequences = _Conversations(self._store)
        added = []
        for index, text in enumerate(texts):
            message = Message(
                message_id=self.t.next_id("messages"),
                user_id=conversation.user_id,
                conversation_id=conversation.conversation_id,
                phone_number_id=conversation.phone_number_id,
                direction=Direction.OUTBOUND,
                sequence_no=sequences.next_sequence(conversation.conversation_id),
                platform_message_id=None,
                content_type="text",
                text=text,
                status=MessageStatus.PENDING,
                failure_reason=None,
                failure_code=None,
                turn_id=turn_id,
                input_tokens=reply.input_tokens if index == 0 else None,
                output_tokens=reply.output_tokens if index == 0 else None,
                sent_at=None,
                created_at=now,
                updated_at=now,
            )
            self.t.messages[message.message_id] = message
            added.append(message)
        current = self.t.conversations[conversation.conversation_id]
        self.t.conversations[conversation.conversation_id] = evolve(
            current, last_message_at=max(current.last_message_at, now)
        )
        return added

    def outbound_for_turn(self, turn_id: int) -> list[Message]:
        found = [m for m in self.t.messages.values() if m.turn_id == turn_id and m.direction is Direction.OUTBOUND]
        return sorted(found, key=lambda m: m.sequence_no)

    def start_sending(self, message_id: int, now: datetime) -> bool:
        for message in _of_direction(self.t, [message_id], Direction.OUTBOUND):
            if message.status is MessageStatus.PENDING:
                self.t.messages[message_id] = evolve(message, status=MessageStatus.SENDING, updated_at=now)
                return True
        return False

    def record_sent(
        self, message_id: int, platform_message_id: str, now: datetime, *, finishing: int | None = None
    ) -> None:
        for message in _of_direction(self.t, [message_id], Direction.OUTBOUND):
            self.t.messages[message_id] = evolve(
                message, status=MessageStatus.SENT, platform_message_id=platform_message_id, sent_at=now, updated_at=now
            )
            self.t.platform_ids[(message.phone_number_id, platform_message_id)] = message_id
        if finishing is not None:
            _Turns(self._store).finish(finishing, now)

    def record_send_failure(
        self, message_id: int, code: str | None, reason: str, now: datetime, *, finishing: int | None = None
    ) -> None:
        for message in _of_direction(self.t, [message_id], Direction.OUTBOUND):
            self.t.messages[message_id] = evolve(
                message, status=MessageStatus.FAILED, failure_code=code, failure_reason=reason, updated_at=now
            )
        if finishing is not None:
            _Turns(self._store).finish(finishing, now)

    def stalled_scopes(self, ordering: OrderingScope, older_than: datetime, limit: int) -> list[ScopeKey]:
        """Oldest first (by the oldest stalled message or turn of the scope), as in PostgreSQL."""
        stalled = [
            (m.conversation_id, m.phone_number_id, m.created_at)
            for m in self.t.messages.values()
            if m.status is MessageStatus.RECEIVED and m.created_at < older_than
        ]
        stalled += [
            (t.conversation_id, t.phone_number_id, t.updated_at)
            for t in self.t.turns.values()
            if t.status.open and t.updated_at < older_than
        ]
        since: dict[ScopeKey, datetime] = {}
        for conversation_id, phone_number_id, at in stalled:
            key = ScopeKey.parse(ordering.key(conversation_id=conversation_id, phone_number_id=phone_number_id))
            since[key] = min(at, since.get(key, at))
        return sorted(since, key=lambda key: since[key])[:limit]

    def list(self, user_id: str, query: MessageQuery) -> Page[Message]:
        if query.order not in ("newest", "sequence"):
            raise ValidationFailed("order must be 'newest' or 'sequence'", field="order")
        if query.order == "sequence" and query.conversation_id is None:
            raise ValidationFailed("order 'sequence' needs a conversation_id", field="order")
        found = [m for m in self.t.messages.values() if m.user_id == user_id and _matches(m, query)]
        if query.customer_id is not None:
            found = [m for m in found if self.t.conversations[m.conversation_id].customer_id == query.customer_id]
        if query.order == "sequence":
            found.sort(key=lambda m: (m.conversation_id, m.sequence_no))
            if query.cursor is not None:
                found = [m for m in found if m.sequence_no > query.cursor]
        else:
            found.sort(key=lambda m: m.message_id, reverse=True)
            if query.cursor is not None:
                found = [m for m in found if m.message_id < query.cursor]
        items = found[: query.limit]
        more = len(found) > query.limit
        next_cursor = None
        if more and items:
            next_cursor = items[-1].sequence_no if query.order == "sequence" else items[-1].message_id
        return Page(items=items, next_cursor=next_cursor)


def _of_direction(tables: _Tables, message_ids: Sequence[int], direction: Direction) -> list[Message]:
    """The stored messages of `direction` among `message_ids`; the others are left alone, as in PostgreSQL."""
    found = (tables.messages.get(message_id) for message_id in dict.fromkeys(message_ids))
    return [m for m in found if m is not None and m.direction is direction]


def _matches(message: Message, query: MessageQuery) -> bool:
    if query.phone_number_id is not None and message.phone_number_id != query.phone_number_id:
        return False
    if query.conversation_id is not None and message.conversation_id != query.conversation_id:
        return False
    if query.status is not None and message.status is not query.status:
        return False
    if query.since is not None and message.created_at < query.since:
        return False
    return query.until is None or message.created_at < query.until


class _Turns(_Repo):
    def _scope_turns(self, scope: ScopeKey) -> list[Turn]:
        if scope.kind is OrderingScope.CONVERSATION:
            return [t for t in self.t.turns.values() if t.conversation_id == int(scope.value)]
        return [t for t in self.t.turns.values() if t.phone_number_id == scope.value]

    def open_turn(self, scope: ScopeKey) -> Turn | None:
        open_turns = sorted((t for t in self._scope_turns(scope) if t.status.open), key=lambda t: t.turn_id)
        return open_turns[0] if open_turns else None

    def start(
        self,
        *,
        user_id: str,
        conversation_id: int,
        phone_number_id: str,
        inbound_ids: Sequence[int],
        credits_reserved: int,
        now: datetime,
    ) -> Turn:
        turn = Turn(
            turn_id=self.t.next_id("turns"),
            user_id=user_id,
            conversation_id=conversation_id,
            phone_number_id=phone_number_id,
            status=TurnStatus.AWAITING_AI,
            inbound_ids=tuple(inbound_ids),
            credits_reserved=credits_reserved,
            attempts=0,
            response_id=None,
            failure_reason=None,
            created_at=now,
            updated_at=now,
        )
        self.t.turns[turn.turn_id] = turn
        for message in _of_direction(self.t, inbound_ids, Direction.INBOUND):
            self.t.messages[message.message_id] = evolve(
                message, status=MessageStatus.PROCESSING, turn_id=turn.turn_id, updated_at=now
            )
        return turn

    def start_funded(
        self,
        *,
        user_id: str,
        conversation_id: int,
        phone_number_id: str,
        inbound_ids: Sequence[int],
        credits_reserved: int,
        now: datetime,
    ) -> Turn | None:
        if not _CreditsRepo(self._store).reserve(user_id, credits_reserved, now):
            return None
        return self.start(
            user_id=user_id,
            conversation_id=conversation_id,
            phone_number_id=phone_number_id,
            inbound_ids=inbound_ids,
            credits_reserved=credits_reserved,
            now=now,
        )

    def note_attempt(self, turn_id: int, now: datetime) -> Turn:
        turn = self.t.turns.get(turn_id)
        if turn is None:
            raise NotFound(f"turn {turn_id} does not exist")
        turn = evolve(turn, attempts=turn.attempts + 1, updated_at=now)
        self.t.turns[turn_id] = turn
        return turn

    def record_reply(self, turn_id: int, reply: AIReply, now: datetime) -> bool:
        turn = self.t.turns.get(turn_id)
        if turn is None or turn.status is not TurnStatus.AWAITING_AI:
            return False
        self.t.turns[turn_id] = evolve(turn, status=TurnStatus.REPLYING, response_id=reply.response_id, updated_at=now)
        return True

    def record_answer(
        self,
        turn: Turn,
        conversation: Conversation,
        reply: AIReply,
        texts: Sequence[str],
        now: datetime,
        *,
        claim_first: bool,
    ) -> list[Message] | None:
        if not texts:
            raise ValueError("an answer has at least one part")
        if not self.record_reply(turn.turn_id, reply, now):
            return None
        messages = _Messages(self._store)
        parts = messages.add_outbound(conversation, turn.turn_id, texts, reply, now)
        if claim_first:
            messages.start_sending(parts[0].message_id, now)
            parts[0] = self.t.messages[parts[0].message_id]
        messages.mark_inbound(turn.inbound_ids, MessageStatus.ANSWERED, now)
        _CreditsRepo(self._store).charge(turn.user_id, turn.credits_reserved, turn.turn_id, now)
        if reply.last_item_id is not None:
            _Conversations(self._store).set_openai_last_item(conversation.conversation_id, reply.last_item_id)
        return parts

    def fail(self, turn_id: int, reason: str, now: datetime) -> bool:
        turn = self.t.turns.get(turn_id)
        if turn is None or turn.status is not TurnStatus.AWAITING_AI:
            return False
        self.t.turns[turn_id] = evolve(turn, status=TurnStatus.FAILED, failure_reason=reason, updated_at=now)
        return True

    def finish(self, turn_id: int, now: datetime) -> None:
        turn = self.t.turns.get(turn_id)
        if turn is not None and turn.status is TurnStatus.REPLYING:
            self.t.turns[turn_id] = evolve(turn, status=TurnStatus.DONE, updated_at=now)


_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")

_DELIVERED_STATUSES = frozenset({MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.PLAYED})

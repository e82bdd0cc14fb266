"""Storage ports of the management side: repositories reached through one unit of work (one transaction).

The message pipeline's own storage (the webhook's and the worker's) is in `pipeline.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

from attrs import frozen

from domain.conversations import Conversation
from domain.credits import CreditMovement, Credits, LedgerEntry
from domain.handoff import HumanReply
from domain.messages import Message, MessageStatus
from domain.tenancy import Agent, Channel, Route, User
from domain.turns import StatusChange


@frozen
class MessageQuery:
    """Filters of GET /users/{id}/messages. `before_id` is the keyset cursor (newest first)."""

    phone_number_id: str | None = None
    conversation_id: int | None = None
    customer_id: str | None = None
    status: MessageStatus | None = None
    since: datetime | None = None
    until: datetime | None = None
    order: str = "newest"  # "newest" (message_id desc) or "sequence" (sequence_no asc)
    cursor: int | None = None  # newest: message_id < cursor; sequence: sequence_no > cursor
    limit: int = 50


T = TypeVar("T")


class StorageUnavailable(Exception):
    """The database cannot be reached (down, pool exhausted, connection lost). Nothing was stored."""


@frozen
class Page(Generic[T]):
    items: Sequence[T]
    next_cursor: int | None


class UsersRepository(Protocol):
    def add(self, user: User) -> None:
        """Store a new user. Raises Conflict when the e-mail is taken."""

    def get(self, user_id: str) -> User | None: ...

    def by_api_key_hash(self, api_key_hash: str) -> User | None: ...


class ChannelsRepository(Protocol):
    def add(self, channel: Channel) -> None:
        """Store a new channel. Raises Conflict when the phone_number_id is registered already."""

    def get(self, user_id: str, phone_number_id: str) -> Channel | None: ...

    def list(self, user_id: str) -> list[Channel]: ...

    def lock(self, user_id: str, phone_number_id: str) -> Channel | None:
        """The tenant's channel, locked for a change until the unit of work ends."""

    def update(self, channel: Channel) -> None:
        """Save a channel's changeable fields (name, token, bot)."""

    def route(self, phone_number_id: str) -> Route | None:
        """The channel and its agent, found by the id a webhook names (not scoped: the webhook has no tenant)."""


class AgentsRepository(Protocol):
    def add(self, agent: Agent) -> None:
        """Store a new agent. Raises Conflict when its channel already has an agent."""

    def get(self, user_id: str, agent_id: str) -> Agent | None: ...

    def list(self, user_id: str) -> list[Agent]: ...


class CreditsRepository(Protocol):
    def get(self, user_id: str) -> Credits:
        """The account; a zero balance when the user has none yet."""

    def record(self, movement: CreditMovement, now: datetime, *, idempotency_key: str | None = None) -> LedgerEntry:
        """Apply a movement that changes the balance (a top-up) and write its ledger entry, at once.

        With an idempotency key seen before for the user, nothing changes and the first entry is
        returned. A movement that would make the account negative is refused (InsufficientCredits).
        """

    def ledger(self, user_id: str, limit: int) -> list[LedgerEntry]:
        """Newest first."""


class ConversationsRepository(Protocol):
    def get(self, conversation_id: int) -> Conversation | None: ...

    def lock(self, user_id: str, conversation_id: int) -> Conversation | None:
        """The tenant's conversation, locked until the unit of work ends: no batch of it is held meanwhile."""

    def save_bot(self, conversation: Conversation) -> None:
        """Save the conversation's bot state (`bot`, `bot_paused_until`)."""

    def held(self, conversation_id: int) -> list[Message]:
        """Its held messages, in order."""

    def last_reply_sequence_no(self, conversation_id: int) -> int:
        """The number of its latest outbound message (the AI's or a person's); 0 for none."""

    def holding(self, phone_number_id: str) -> list[int]:
        """The ids of the channel's conversations that hold messages."""

    def change_status(self, change: StatusChange, now: datetime) -> None:
        """Move the inbound messages of `change` that are still `change.before`."""


class MessagesRepository(Protocol):
    def list(self, user_id: str, query: MessageQuery) -> Page[Message]: ...

    def add_human_reply(self, reply: HumanReply, idempotency_key: str | None) -> tuple[Message, ...]:
        """Store a person's reply as outbound `human` parts numbered after `reply.before` (its conversation,
        locked by this unit of work), and the conversation as `reply.conversation`. The key is kept on the
        first part; a key used before in the conversation is a Conflict."""

    def human_reply(self, conversation_id: int, idempotency_key: str) -> tuple[Message, ...]:
        """The parts of the reply stored with that key in the conversation, in order (empty: none)."""


class UnitOfWork(Protocol):
    users: UsersRepository
    channels: ChannelsRepository
    agents: AgentsRepository
    credits: CreditsRepository
    conversations: ConversationsRepository
    messages: MessagesRepository

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Roll back whatever was not committed."""

    def commit(self) -> None: ...

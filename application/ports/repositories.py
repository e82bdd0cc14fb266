"""Storage ports of the management side: repositories reached through one unit of work (one transaction).

The message pipeline's own storage (the webhook's and the worker's) is in `pipeline.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

from attrs import frozen

from application.ports.lead_storage import ExtractionsRepository, NotificationsRepository, WebhooksRepository
from domain.channels import BotState
from domain.conversations import Conversation
from domain.credits import CreditMovement, Credits, LedgerEntry
from domain.handoff import HumanReply
from domain.messages import Direction, Message, MessageStatus
from domain.relink import Relink, Seat
from domain.tenancy import Agent, Channel, Route, User
from domain.turns import StatusChange


@frozen
class MessageQuery:
    """Filters of GET /users/{id}/messages. `before_id` is the keyset cursor (newest first)."""

    phone_number_id: str | None = None
    conversation_id: int | None = None
    customer_id: str | None = None
    status: MessageStatus | None = None
    direction: Direction | None = None
    since: datetime | None = None
    until: datetime | None = None
    order: str = "newest"  # "newest" (message_id desc) or "sequence" (sequence_no asc)
    cursor: int | None = None  # newest: message_id < cursor; sequence: sequence_no > cursor
    limit: int = 50


@frozen
class ConversationCursor:
    """Where a page of conversations ends: the listing is newest activity first
    (`last_message_at` descending, then `conversation_id` descending), and resumes after this one."""

    last_message_at: datetime
    conversation_id: int


@frozen
class ConversationQuery:
    """Filters of GET /users/{id}/conversations. `is_active` None lists active and archived ones.
    (Filters on the conversation's other states go here, one field each.)"""

    phone_number_id: str | None = None
    customer_id: str | None = None
    is_active: bool | None = None
    #: The conversation's own bot state (a channel-wide pause is the channel's `bot`); None: either.
    bot: BotState | None = None
    cursor: ConversationCursor | None = None
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
        """Store a new channel. Raises Conflict when the phone_number_id is registered already — unless
        it is a channel the same tenant deleted: that one comes back as `channel` (new token, type,
        number), with its history."""

    def get(self, user_id: str, phone_number_id: str) -> Channel | None:
        """The tenant's channel; None for another tenant's or a deleted one."""

    def list(self, user_id: str) -> list[Channel]:
        """The tenant's channels that are not deleted."""

    def lock(self, user_id: str, phone_number_id: str) -> Channel | None:
        """The tenant's channel, locked for a change until the unit of work ends."""

    def update(self, channel: Channel) -> None:
        """Save a channel's changeable fields (name, token, bot)."""

    def route(self, phone_number_id: str) -> Route | None:
        """The channel and its agent, found by the id a webhook names (not scoped: the webhook has no tenant).
        A deleted channel is found too (`channel.deleted`), so that its deliveries are ignored knowingly."""

    def save(self, channel: Channel) -> None:
        """Save a channel's change (its deletion)."""


class AgentsRepository(Protocol):
    def add(self, agent: Agent) -> None:
        """Store a new agent. Raises Conflict when its channel already has an agent."""

    def get(self, user_id: str, agent_id: str) -> Agent | None:
        """The tenant's agent; None for another tenant's or a deleted one."""

    def list(self, user_id: str) -> list[Agent]:
        """The tenant's agents that are not deleted."""

    def holder(self, phone_number_id: str) -> Agent | None:
        """The agent linked to the channel, if any."""


class SeatsRepository(Protocol):
    """What RelinkAgent reads and saves: the agents' seats on their channels."""

    def seat(self, agent: Agent) -> Seat:
        """What `agent` holds on its channel (see `Seat`), locked until the unit of work ends: a webhook
        cannot add to it, nor a worker start or answer one of its turns, while a relink decides."""

    def save(self, relink: Relink) -> tuple[int, ...]:
        """Save the whole relink: agents (in order; Conflict when a channel would get two), archives,
        withdrawn turns with their holds, skipped messages, then the reopened conversations with the
        messages carried over. Returns the new conversations' ids, in the order of `relink.reopened`."""


class CreditsRepository(Protocol):
    def get(self, user_id: str) -> Credits:
        """The account; a zero balance when the user has none yet."""

    def record(self, movement: CreditMovement, now: datetime, *, idempotency_key: str | None = None) -> LedgerEntry:
        """Apply a movement that changes the balance (a top-up) and write its ledger entry, at once.

        With an idempotency key seen before for the user, nothing changes and the first entry is
        returned. A movement that would make the account negative is refused (InsufficientCredits).
        """

    def ledger(self, user_id: str, limit: int, *, before: int | None = None) -> list[LedgerEntry]:
        """Newest first (`entry_id` descending); with `before`, only the entries older than that id."""


@frozen
class ConversationPage:
    items: Sequence[Conversation]
    next_cursor: ConversationCursor | None


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
        """Move the inbound messages of `change` (in its conversation) that are still `change.before`."""

    def list(self, user_id: str, query: ConversationQuery) -> ConversationPage:
        """The user's conversations, newest activity first."""


class MessagesRepository(Protocol):
    def list(self, user_id: str, query: MessageQuery) -> Page[Message]: ...

    def get(self, user_id: str, message_id: int) -> Message | None:
        """The user's message with that id; None for none (or another user's)."""

    def add_human_reply(self, reply: HumanReply, idempotency_key: str | None) -> tuple[Message, ...]:
        """Store a person's reply as outbound `human` parts numbered after `reply.before` (its conversation,
        locked by this unit of work), and the conversation as `reply.conversation`. The key is kept on the
        first part; a key used before in the conversation is a Conflict."""

    def human_reply(self, conversation_id: int, idempotency_key: str) -> tuple[Message, ...]:
        """The parts of the reply stored with that key in the conversation, in order (empty: none)."""

    def visitor_timeline(
        self, phone_number_id: str, customer_id: str, after: int | None, limit: int
    ) -> tuple[Message, ...]:
        """A customer's messages on a channel, in all its conversations (a relink starts a new one), oldest
        first: the first `limit` with `message_id > after`, or with `after` None the latest `limit`."""


class UnitOfWork(Protocol):
    users: UsersRepository
    channels: ChannelsRepository
    agents: AgentsRepository
    credits: CreditsRepository
    conversations: ConversationsRepository
    messages: MessagesRepository
    seats: SeatsRepository
    extractions: ExtractionsRepository
    notifications: NotificationsRepository
    webhooks: WebhooksRepository

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Roll back whatever was not committed."""

    def commit(self) -> None: ...

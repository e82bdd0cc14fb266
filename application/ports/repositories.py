"""Storage ports: repositories reached through one unit of work (one transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

from attrs import frozen

from domain.credits import Credits, LedgerEntry
from domain.messages import (
    Conversation,
    DeliveryReport,
    InboundMessage,
    Message,
    MessageStatus,
    OrderingScope,
    RecordedInbound,
    ScopeKey,
)
from domain.tenancy import Agent, Channel, Route, User
from domain.turns import AIReply, Turn


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

    def top_up(
        self, user_id: str, amount: int, reason: str | None, idempotency_key: str | None, now: datetime
    ) -> LedgerEntry:
        """Add credits. With an idempotency key seen before, nothing changes and the first entry is returned."""

    def reserve(self, user_id: str, amount: int, now: datetime) -> bool:
        """Hold `amount` credits if that many are available; False (and nothing held) otherwise."""

    def release(self, user_id: str, amount: int, now: datetime) -> None:
        """Give back a hold that will not be charged."""

    def charge(self, user_id: str, amount: int, turn_id: int, now: datetime) -> LedgerEntry:
        """Turn a hold into a charge: balance and reserved both drop by `amount`; one ledger entry."""

    def ledger(self, user_id: str, limit: int) -> list[LedgerEntry]:
        """Newest first."""


class ConversationsRepository(Protocol):
    def get(self, conversation_id: int) -> Conversation | None: ...

    def set_openai_conversation(self, conversation_id: int, openai_conversation_id: str) -> None: ...

    def set_openai_last_item(self, conversation_id: int, item_id: str | None) -> None: ...


class MessagesRepository(Protocol):
    def record_inbound(self, route: Route, inbound: InboundMessage, now: datetime) -> RecordedInbound:
        """Store a customer's message in the active conversation of (agent, customer), creating it if needed.

        The message gets the conversation's next sequence number. Answerable messages are stored
        as `received`, the others as `skipped` with `inbound.skip_reason`. A platform message id
        already stored for the channel changes nothing and comes back with `duplicate=True`.
        Requires `route.agent`.
        """

    def apply_delivery_report(self, report: DeliveryReport, now: datetime) -> bool:
        """Move an outbound message's status forward (never back, see `next_delivery_status`).

        An error in the report is recorded even when the status stays. False when no outbound
        message of the channel has that platform id.
        """

    def pending_batch(self, scope: ScopeKey) -> list[Message]:
        """The next messages to answer together: the `received` inbound messages of the scope, in
        the order received, cut at the first message of another conversation."""

    def has_pending(self, scope: ScopeKey) -> bool: ...

    def get_many(self, message_ids: Sequence[int]) -> list[Message]:
        """In sequence order."""

    def mark_inbound(
        self,
        message_ids: Sequence[int],
        status: MessageStatus,
        now: datetime,
        *,
        failure_reason: str | None = None,
        failure_code: str | None = None,
    ) -> None: ...

    def add_outbound(
        self, conversation: Conversation, turn_id: int, texts: Sequence[str], reply: AIReply, now: datetime
    ) -> list[Message]:
        """Store the reply as `pending` outbound messages (one per piece), with the next sequence numbers.
        Token usage goes on the first piece."""

    def outbound_for_turn(self, turn_id: int) -> list[Message]:
        """In sequence order."""

    def start_sending(self, message_id: int, now: datetime) -> bool:
        """pending → sending. False when the message was not pending (someone else took it)."""

    def record_sent(
        self, message_id: int, platform_message_id: str, now: datetime, *, finishing: int | None = None
    ) -> None:
        """Mark an outbound message sent. With `finishing`, that turn's `turns.finish` in the same step."""

    def record_send_failure(
        self, message_id: int, code: str | None, reason: str, now: datetime, *, finishing: int | None = None
    ) -> None:
        """Mark an outbound message failed with the channel's error code and reason. With `finishing`,
        that turn's `turns.finish` in the same step."""

    def stalled_scopes(self, ordering: OrderingScope, older_than: datetime, limit: int) -> list[ScopeKey]:
        """Scopes with `received` messages or open turns last touched before `older_than`."""

    def list(self, user_id: str, query: MessageQuery) -> Page[Message]: ...


class TurnsRepository(Protocol):
    def open_turn(self, scope: ScopeKey) -> Turn | None:
        """The oldest turn of the scope that is not done or failed (left by a stopped worker)."""

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
        """Create an `awaiting_ai` turn and mark its inbound messages `processing`."""

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
        """`credits.reserve` and `start` as one step (the worker's hot path: one statement in PostgreSQL).
        None, and nothing changed, when fewer than `credits_reserved` credits are available."""

    def note_attempt(self, turn_id: int, now: datetime) -> Turn: ...

    def record_reply(self, turn_id: int, reply: AIReply, now: datetime) -> bool:
        """awaiting_ai → replying. False when the turn had moved on (another worker got there first)."""

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
        """Everything an AI answer changes, as one step (one statement in PostgreSQL): `record_reply`;
        the texts stored as the reply's parts (`messages.add_outbound`), the first already `sending`
        with `claim_first`; the turn's inbound messages `answered`; its reserved credits charged
        (`credits.charge`); and the conversation's last OpenAI item when the reply names one.

        Returns the parts in order, or None, with nothing changed, when the turn had moved on.
        `texts` must not be empty.
        """

    def fail(self, turn_id: int, reason: str, now: datetime) -> bool:
        """awaiting_ai → failed. False when the turn had moved on."""

    def finish(self, turn_id: int, now: datetime) -> None:
        """replying → done."""


class UnitOfWork(Protocol):
    users: UsersRepository
    channels: ChannelsRepository
    agents: AgentsRepository
    credits: CreditsRepository
    conversations: ConversationsRepository
    messages: MessagesRepository
    turns: TurnsRepository

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Roll back whatever was not committed."""

    def commit(self) -> None: ...

"""Storage ports of the message pipeline: what the webhook and the worker read and save.

Every method is one atomic change (or a read): the domain decided the change, the adapter saves it
as a whole or not at all, conditional on the state the change started from (`before`), so two
workers can never both move a turn or a part on. How an adapter makes a call atomic (one
statement, a transaction, a lock) is its own business.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from attrs import frozen

from domain.conversations import Conversation
from domain.credits import Credits
from domain.messages import BusinessEcho, InboundMessage, Message, OrderingScope, RecordedInbound, ScopeKey
from domain.rejections import RejectedDelivery
from domain.tenancy import Route
from domain.turns import PartChange, Turn, TurnAnswered, TurnFailed, TurnHeld, TurnRefused, TurnStarted, TurnStatus


class MessageNotStorable(Exception):
    """The storage refused a message for what it holds (a character or a value it cannot store), not
    because it is away: nothing of the message was stored, and the messages beside it still can be."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MessageStore(Protocol):
    """The webhook's side: customers' messages in, the channel's reports about ours."""

    def record_inbound(self, route: Route, inbound: InboundMessage, now: datetime) -> RecordedInbound | None:
        """Store a customer's message in the active conversation of (agent, customer), opening one if
        there is none (`Conversation.open`, then `Conversation.receive`), as `inbound.status`.

        A platform message id already stored for the channel changes nothing and comes back with
        `duplicate=True`. Requires `route.agent`. None, and nothing stored, when `route.agent` is no
        longer the channel's agent (the route was read before a relink): read the route again. Raises
        MessageNotStorable when the message holds what cannot be stored, StorageUnavailable when the
        database cannot be reached.
        """

    def record_echo(self, route: Route, echo: BusinessEcho, now: datetime) -> RecordedInbound | None:
        """Store a message the business sent from its own app as an outbound `human` message, `sent`, in the
        active conversation of (agent, customer), opening one if there is none, and take the conversation
        over (`Conversation.echo`). A platform id already stored for the channel changes nothing and comes
        back with `duplicate=True`. None, and nothing stored or paused, when the echo is of a part of that
        conversation being sent right now (`BusinessEcho.is_our_send_in_flight`), decided with the store
        as one change, so that no part's outcome falls between the check and the insert. Requires
        `route.agent`; raises as `record_inbound` does."""

    def outbound(self, phone_number_id: str, platform_message_id: str) -> Message | None:
        """Our message with that platform id on that channel; None for none (or an inbound one)."""

    def save_report(self, before: Message, after: Message) -> bool:
        """Save what a delivery report changed. False, and nothing saved, when the message is no
        longer as `before` (another report got there first): read it again and decide again."""

    def inbound(self, phone_number_id: str, platform_message_id: str) -> Message | None:
        """The customer's message with that platform id on that channel; None for none (or an outbound one)."""

    def save_deletion(self, before: Message, after: Message) -> bool:
        """Save a customer's message they unsent (`Message.deleted_by_customer`): its status, failure and
        time. False, and nothing saved, when it is no longer as `before` (a worker took it meanwhile)."""

    def save_retry(self, before: Message, after: Message) -> bool:
        """Save a failed message given another chance (`Message.retry`): its status, failure and time.
        False, and nothing saved, when it is no longer as `before` (retried, or changed, meanwhile)."""


class RejectedDeliveries(Protocol):
    """Where what the webhook could not store is kept for inspection."""

    def record(self, rejected: RejectedDelivery) -> None:
        """Keep it. Raises StorageUnavailable when the database cannot be reached."""


#: At most this many messages of `Work.context`, the latest.
CONTEXT_LIMIT = 50


@frozen
class Work:
    """What an ordering scope holds for the worker, read at once.

    `turn` is a turn left open by a worker that stopped (it comes first), else None. `messages`
    are, with no open turn, the pending batch (the scope's leading `received` messages of one
    conversation, in order); for a turn awaiting the AI, its inbound messages; for a replying
    turn, its reply parts.

    `context`, with a batch to answer: the messages after what the AI has seen and before the batch that
    are not the AI's own (a person's replies, the customer's messages they answered), in order, at most
    `CONTEXT_LIMIT` of the latest.
    """

    conversation: Conversation
    credits: Credits
    turn: Turn | None
    messages: tuple[Message, ...]
    context: tuple[Message, ...] = ()


class TurnStore(Protocol):
    """The worker's side: pending work, and the turns answering it."""

    def next_work(self, scope: ScopeKey) -> Work | None:
        """None when the scope has neither an open turn nor a pending message."""

    def has_pending(self, scope: ScopeKey) -> bool:
        """Whether the scope has `received` messages."""

    def stalled_scopes(self, ordering: OrderingScope, older_than: datetime, limit: int) -> list[ScopeKey]:
        """Scopes with `received` messages or open turns last touched before `older_than`, oldest first."""

    def start(self, started: TurnStarted) -> Turn | None:
        """Store the turn, hold its credits, move its batch on. None, and nothing changed, when the
        credits are no longer there (spent by a concurrent turn since they were read), or when the
        conversation was archived or the batch carried over by a relink since they were read."""

    def refuse(self, refused: TurnRefused) -> None: ...

    def hold(self, held: TurnHeld) -> bool:
        """Move the batch to `held`, only while the conversation's bot and the channel's are still as
        `held` read them. False, and nothing changed, when either changed meanwhile (decide again)."""

    def pauses_run_out(self, now: datetime, limit: int) -> list[tuple[str, int]]:
        """(user_id, conversation_id) of paused conversations whose timed pause ended by `now`, the
        longest-ended first."""

    def save_turn(self, turn: Turn, before: TurnStatus) -> bool:
        """Save a turn's own fields (status, attempts, times). False when it is no longer `before`."""

    def link_ai(self, conversation: Conversation) -> None:
        """Keep the conversation's AI-side id, unless one was kept meanwhile."""

    def answer(self, answered: TurnAnswered) -> tuple[Message, ...] | None:
        """Everything the answer changes, at once: the turn, its parts (numbered after every message of
        the conversation so far), its batch, the charge in the ledger, the conversation's last AI item.
        Returns the parts in order; None, and nothing changed, when the turn had moved on."""

    def fail(self, failed: TurnFailed) -> bool:
        """The turn, the release of its hold and its batch, at once. False when the turn had moved on."""

    def save_part(self, change: PartChange) -> bool:
        """A part claimed, or its outcome with, for the last part, the end of its turn, at once.
        False, and nothing changed, when the part is no longer `change.before`."""

"""Messages and the rules of their life cycle: what a customer's message is stored as, how a reply
part goes out once, and how the channel's delivery reports move it on."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from attrs import evolve, frozen

from domain.errors import InvalidTransition, RetryRefused

if TYPE_CHECKING:  # conversations are made of messages: the import the other way would be a cycle
    from domain.conversations import Conversation

#: Why a reply part is failed without a send attempt: a worker stopped during its send, so it may have
#: gone out. It is never sent again, not even on request: the customer could read it twice.
DELIVERY_OUTCOME_UNKNOWN = "delivery_outcome_unknown"
#: Why a customer's message is not answered: they unsent it (Instagram's `is_deleted`) before it was.
DELETED_BY_CUSTOMER = "deleted_by_customer"

#: Why a failed message is not retried (the code of the refusal).
NOT_RETRYABLE = "not_retryable"


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageStatus(enum.StrEnum):
    # inbound
    RECEIVED = "received"  # stored, waiting for its turn
    PROCESSING = "processing"  # part of an AI turn under way
    ANSWERED = "answered"
    SKIPPED = "skipped"  # recorded, deliberately not answered (failure_reason says why)
    HELD = "held"  # stored while the bot was paused: waiting for a person (or for the bot to resume)
    # outbound
    PENDING = "pending"  # reply stored, not sent yet
    SENDING = "sending"  # the one send attempt is under way
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    # both
    FAILED = "failed"

    @property
    def awaiting_send(self) -> bool:
        """An outbound part whose one send attempt has no outcome yet."""
        return self in (MessageStatus.PENDING, MessageStatus.SENDING)


_DELIVERY_RANK = {
    MessageStatus.PENDING: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.SENT: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.READ: 4,
    MessageStatus.PLAYED: 5,
}

#: Statuses that prove the channel took the message.
_TAKEN = frozenset({MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.PLAYED})


def _reported_status(current: MessageStatus, reported: MessageStatus) -> MessageStatus | None:
    """The status an outbound message moves to when the channel reports `reported`, or None to keep it.

    Statuses never move backwards (Meta delivers them out of order). A `failed` report only
    becomes the status while the message was not yet delivered; after that the failure is kept
    as a note and the better status stays. A late `delivered` or `read` after a failure proves
    the message arrived after all.
    """
    if reported == MessageStatus.FAILED:
        if current == MessageStatus.FAILED or _DELIVERY_RANK.get(current, 0) >= _DELIVERY_RANK[MessageStatus.DELIVERED]:
            return None
        return MessageStatus.FAILED
    if reported not in _DELIVERY_RANK:
        return None
    if current == MessageStatus.FAILED:
        return reported if _DELIVERY_RANK[reported] >= _DELIVERY_RANK[MessageStatus.DELIVERED] else None
    if _DELIVERY_RANK[reported] > _DELIVERY_RANK.get(current, -1):
        return reported
    return None


class Sender(enum.StrEnum):
    """Who wrote a message: the customer, the AI, or a person from the team."""

    CUSTOMER = "customer"
    AI = "ai"
    HUMAN = "human"


class OrderingScope(enum.StrEnum):
    """What must be processed strictly one at a time, in order received."""

    CONVERSATION = "conversation"
    PHONE_NUMBER = "phone_number"

    def key(self, *, conversation_id: int, phone_number_id: str) -> str:
        if self is OrderingScope.CONVERSATION:
            return f"conversation:{conversation_id}"
        return f"channel:{phone_number_id}"


@frozen
class ScopeKey:
    kind: OrderingScope
    value: str

    @classmethod
    def parse(cls, key: str) -> ScopeKey:
        prefix, _, value = key.partition(":")
        kind = {"conversation": OrderingScope.CONVERSATION, "channel": OrderingScope.PHONE_NUMBER}.get(prefix)
        if kind is None or not value:
            raise ValueError(f"not an ordering scope key: {key!r}")
        return cls(kind, value)

    def __str__(self) -> str:
        return f"{'conversation' if self.kind is OrderingScope.CONVERSATION else 'channel'}:{self.value}"


@frozen
class InboundMessage:
    """A customer's message as the channel delivered it, before it is stored.

    `text` is what the agent answers; None means the message is recorded and skipped, with
    `skip_reason` saying why (an image, a reaction, an unsupported type...).
    """

    phone_number_id: str
    platform_message_id: str
    customer_id: str
    customer_name: str | None
    content_type: str
    text: str | None
    skip_reason: str | None
    sent_at: datetime
    raw: dict[str, object]

    @property
    def answerable(self) -> bool:
        return self.text is not None and self.skip_reason is None

    @property
    def status(self) -> MessageStatus:
        """What it is stored as: waiting for an answer, or recorded and skipped."""
        return MessageStatus.RECEIVED if self.answerable else MessageStatus.SKIPPED

    @property
    def failure_reason(self) -> str | None:
        return None if self.answerable else self.skip_reason


@frozen
class BusinessEcho:
    """A message the account sent to a customer, as the channel echoed it. From the business's own app
    (WhatsApp Business app, coexistence; the Instagram app) it is a person's reply, stored once (by its
    platform id) and sent already. Instagram echoes our own sends too: those are already stored."""

    phone_number_id: str
    platform_message_id: str
    customer_id: str
    content_type: str
    text: str | None
    sent_at: datetime
    raw: dict[str, object]

    def is_our_send_in_flight(self, part: Message, conversation: Conversation) -> bool:
        """Whether this echo is `part` of `conversation`, a reply we are sending to that customer right now.

        The channel may echo our send before we have stored the platform id it answered with, so the echo
        cannot be known by its id yet: an echo with the very text of a part being sent to that customer on
        that channel is ours. The business typing, at that very moment, the same text from its own app
        cannot be told apart, and is taken for ours."""
        return (
            self.text is not None
            and conversation.is_active
            and conversation.customer_id == self.customer_id
            and part.conversation_id == conversation.conversation_id
            and part.phone_number_id == self.phone_number_id
            and part.direction is Direction.OUTBOUND
            and part.status is MessageStatus.SENDING
            and part.text == self.text
        )


@frozen
class CustomerDeletion:
    """The channel says the customer unsent one of their messages (Instagram's `is_deleted`)."""

    phone_number_id: str
    platform_message_id: str


@frozen
class DeliveryReport:
    """A status update from the channel about one of our outbound messages."""

    phone_number_id: str
    platform_message_id: str
    status: MessageStatus
    at: datetime
    error_code: str | None = None
    error_reason: str | None = None


@frozen
class RecordedInbound:
    message_id: int
    conversation_id: int
    sequence_no: int
    duplicate: bool


@frozen
class Message:
    message_id: int
    user_id: str
    conversation_id: int
    phone_number_id: str
    direction: Direction
    sender: Sender
    sequence_no: int
    platform_message_id: str | None
    content_type: str
    text: str | None
    status: MessageStatus
    failure_reason: str | None
    failure_code: str | None
    turn_id: int | None
    input_tokens: int | None
    output_tokens: int | None
    sent_at: datetime | None
    created_at: datetime
    updated_at: datetime

    # --- a reply part's one send attempt ---------------------------------------------------------

    def claim(self, now: datetime) -> Message:
        """pending → sending, committed before the send: a part found `sending` later may have gone out."""
        self._require_outbound(MessageStatus.PENDING)
        return evolve(self, status=MessageStatus.SENDING, updated_at=now)

    def sent(self, platform_message_id: str, now: datetime) -> Message:
        """The channel took the part it was given in the send attempt."""
        self._require_outbound(MessageStatus.SENDING)
        return evolve(
            self, status=MessageStatus.SENT, platform_message_id=platform_message_id, sent_at=now, updated_at=now
        )

    def not_taken(self, now: datetime) -> Message:
        """sending → pending: the channel certainly did not take it, and it may be sent again later."""
        self._require_outbound(MessageStatus.SENDING)
        return evolve(self, status=MessageStatus.PENDING, updated_at=now)

    def undeliverable(self, code: str | None, reason: str, now: datetime) -> Message:
        """The part will not be sent, or its send failed: failed for good, with the channel's code if any."""
        self._require_outbound(MessageStatus.PENDING, MessageStatus.SENDING)
        return evolve(self, status=MessageStatus.FAILED, failure_code=code, failure_reason=reason, updated_at=now)

    def _require_outbound(self, *allowed: MessageStatus) -> None:
        if self.direction is not Direction.OUTBOUND or self.status not in allowed:
            raise InvalidTransition(
                f"message {self.message_id} is {self.direction} and {self.status}; "
                f"this needs an outbound message that is {' or '.join(allowed)}"
            )

    # --- the customer unsends it ----------------------------------------------------------------------

    def deleted_by_customer(self, now: datetime) -> Message | None:
        """The customer unsent this message. While it still waits for an answer (received, held for a
        person, or failed) it is skipped as `deleted_by_customer` and never answered; once it is being
        answered or was answered (or skipped already) it stays as it is — None — for the conversation's
        history keeps what the reply was to."""
        if self.direction is not Direction.INBOUND:
            return None
        if self.status not in (MessageStatus.RECEIVED, MessageStatus.HELD, MessageStatus.FAILED):
            return None
        return evolve(
            self, status=MessageStatus.SKIPPED, failure_reason=DELETED_BY_CUSTOMER, failure_code=None, updated_at=now
        )

    # --- another chance for a failed message ---------------------------------------------------------

    def retry(self, now: datetime) -> Message | None:
        """The failed message given another chance, or None when it is not failed (never failed, or
        retried already): a retry changes nothing twice.

        A customer's message goes back to `received`, to be answered in the conversation's order; a
        reply part is claimed for one more send attempt (`sending`), as the worker claims a part. The
        failure is cleared either way. A part that may have gone out is refused (`RetryRefused`).
        """
        if self.status is not MessageStatus.FAILED:
            return None
        if self.direction is Direction.INBOUND:
            return evolve(self, status=MessageStatus.RECEIVED, failure_reason=None, failure_code=None, updated_at=now)
        if self.failure_reason == DELIVERY_OUTCOME_UNKNOWN:
            raise RetryRefused(
                NOT_RETRYABLE,
                f"message {self.message_id} may have reached the customer already (its send was interrupted); "
                "it is not sent again",
            )
        return evolve(self, status=MessageStatus.SENDING, failure_reason=None, failure_code=None, updated_at=now)

    # --- what the channel reports afterwards -----------------------------------------------------

    def report(self, report: DeliveryReport, now: datetime) -> Message | None:
        """The message after the channel's status report, or None when the report changes nothing.

        The status never moves back; an error the report carries is kept as a note even when the
        status stays (a missing part of it keeps what an earlier report said).
        """
        if self.direction is not Direction.OUTBOUND:
            raise InvalidTransition(f"message {self.message_id} is inbound: it gets no delivery reports")
        status = _reported_status(self.status, report.status)
        code = report.error_code if report.error_code is not None else self.failure_code
        reason = report.error_reason if report.error_reason is not None else self.failure_reason
        if status is None and (code, reason) == (self.failure_code, self.failure_reason):
            return None
        changed = evolve(self, failure_code=code, failure_reason=reason, updated_at=now)
        if status is None:
            return changed
        sent_at = self.sent_at if self.sent_at is not None or status not in _TAKEN else report.at
        return evolve(changed, status=status, sent_at=sent_at)

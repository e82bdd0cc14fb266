"""Conversations, messages and the rules of their life cycle."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from attrs import frozen

from domain.tenancy import ChannelType

#: WhatsApp's customer-service window: free-form replies only within 24 h of the customer's last message.
SERVICE_WINDOW = timedelta(hours=24)

#: Longest text one outbound message may carry, per channel (WhatsApp: characters).
TEXT_LIMITS = {ChannelType.WHATSAPP: 4096, ChannelType.INSTAGRAM: 1000, ChannelType.WEBCHAT: 4096}


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageStatus(enum.StrEnum):
    # inbound
    RECEIVED = "received"  # stored, waiting for its turn
    PROCESSING = "processing"  # part of an AI turn under way
    ANSWERED = "answered"
    SKIPPED = "skipped"  # recorded, deliberately not answered (failure_reason says why)
    # outbound
    PENDING = "pending"  # reply stored, not sent yet
    SENDING = "sending"  # the one send attempt is under way
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    # both
    FAILED = "failed"


_DELIVERY_RANK = {
    MessageStatus.PENDING: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.SENT: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.READ: 4,
    MessageStatus.PLAYED: 5,
}


def next_delivery_status(current: MessageStatus, reported: MessageStatus) -> MessageStatus | None:
    """The status an outbound message moves to when Meta reports `reported`, or None to keep it.

    Statuses never move backwards (Meta delivers them out of order). A `failed` report only
    becomes the status while the message was not yet delivered; after that the failure is kept
    as a note and the better status stays.
    """
    if reported == MessageStatus.FAILED:
        if current == MessageStatus.FAILED or _DELIVERY_RANK.get(current, 0) >= _DELIVERY_RANK[MessageStatus.DELIVERED]:
            return None
        return MessageStatus.FAILED
    if reported not in _DELIVERY_RANK:
        return None
    if current == MessageStatus.FAILED:
        # A late 'delivered'/'read' proves the message arrived after all.
        return reported if _DELIVERY_RANK[reported] >= _DELIVERY_RANK[MessageStatus.DELIVERED] else None
    if _DELIVERY_RANK[reported] > _DELIVERY_RANK.get(current, -1):
        return reported
    return None


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
class Conversation:
    conversation_id: int
    user_id: str
    agent_id: str
    phone_number_id: str
    customer_id: str
    customer_name: str | None
    openai_conversation_id: str | None
    openai_last_item_id: str | None
    is_active: bool
    created_at: datetime
    last_message_at: datetime
    last_customer_message_at: datetime | None


@frozen
class Message:
    message_id: int
    user_id: str
    conversation_id: int
    phone_number_id: str
    direction: Direction
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


def within_service_window(last_customer_message_at: datetime | None, now: datetime) -> bool:
    """True while a free-form reply may still be sent (the customer wrote within 24 hours)."""
    return last_customer_message_at is not None and now - last_customer_message_at < SERVICE_WINDOW


def split_text(text: str, limit: int) -> list[str]:
    """Cut a reply into pieces of at most `limit` characters, preferring paragraph, line and word breaks."""
    text = text.strip()
    if not text:
        return []
    pieces: list[str] = []
    while len(text) > limit:
        window = text[:limit]
        cut = next(
            (at for at in (window.rfind(mark) for mark in ("\n\n", "\n", " ")) if at >= limit // 2),
            limit,  # no natural break in the second half of the window: cut hard
        )
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        pieces.append(text)
    return pieces

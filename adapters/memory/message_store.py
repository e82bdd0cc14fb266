"""The webhook's storage in memory: customers' messages in, delivery reports about ours."""

from __future__ import annotations

from datetime import datetime

from adapters.memory.tables import InMemoryStore, Tables
from application.ports.pipeline import MessageNotStorable
from domain import limits
from domain.conversations import Conversation
from domain.messages import (
    BusinessEcho,
    Direction,
    InboundMessage,
    Message,
    MessageStatus,
    RecordedInbound,
    Sender,
)
from domain.tenancy import Route


class InMemoryMessageStore:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    def record_inbound(self, route: Route, inbound: InboundMessage, now: datetime) -> RecordedInbound | None:
        if route.agent is None:
            raise ValueError(f"channel {route.channel.phone_number_id} has no agent to record a conversation with")
        _require_storable(inbound)
        with self._store.atomic() as t:
            seen = _seen(t, route.channel.phone_number_id, inbound.platform_message_id)
            if seen is not None:
                return seen
            agent_id = route.agent.agent_id
            linked = t.agents.get(agent_id)
            if linked is None or linked.phone_number_id != route.channel.phone_number_id:
                return None  # the route was read before a relink
            conversation = _active(t, agent_id, inbound.customer_id) or Conversation.open(
                t.next_id("conversations"), route.user_id, agent_id, inbound, now
            )
            conversation = conversation.receive(inbound, now)
            t.conversations[conversation.conversation_id] = conversation
            message = Message(
                message_id=t.next_id("messages"),
                user_id=route.user_id,
                conversation_id=conversation.conversation_id,
                phone_number_id=route.channel.phone_number_id,
                direction=Direction.INBOUND,
                sender=Sender.CUSTOMER,
                sequence_no=conversation.last_sequence_no,
                platform_message_id=inbound.platform_message_id,
                content_type=inbound.content_type,
                text=inbound.text,
                status=inbound.status,
                failure_reason=inbound.failure_reason,
                failure_code=None,
                turn_id=None,
                input_tokens=None,
                output_tokens=None,
                sent_at=inbound.sent_at,
                created_at=now,
                updated_at=now,
            )
            return _keep(t, message, inbound.platform_message_id)

    def record_echo(self, route: Route, echo: BusinessEcho, now: datetime) -> RecordedInbound | None:
        if route.agent is None:
            raise ValueError(f"channel {route.channel.phone_number_id} has no agent to record a conversation with")
        texts = [echo.platform_message_id, echo.customer_id, echo.content_type, echo.text]
        if not all(text is None or limits.is_storable(text) for text in texts):
            raise MessageNotStorable("the message holds NUL or a lone surrogate, which no stored text may hold")
        with self._store.atomic() as t:
            seen = _seen(t, route.channel.phone_number_id, echo.platform_message_id)
            if seen is not None:
                return seen
            agent_id = route.agent.agent_id
            found = _active(t, agent_id, echo.customer_id)
            if found is not None and any(echo.is_our_send_in_flight(m, found) for m in t.messages.values()):
                return None
            if found is None:
                found = Conversation.start(
                    t.next_id("conversations"),
                    route.user_id,
                    agent_id,
                    route.channel.phone_number_id,
                    echo.customer_id,
                    now,
                )
            conversation = found.echo(now)
            t.conversations[conversation.conversation_id] = conversation
            message = Message(
                message_id=t.next_id("messages"),
                user_id=route.user_id,
                conversation_id=conversation.conversation_id,
                phone_number_id=route.channel.phone_number_id,
                direction=Direction.OUTBOUND,
                sender=Sender.HUMAN,
                sequence_no=conversation.last_sequence_no,
                platform_message_id=echo.platform_message_id,
                content_type=echo.content_type,
                text=echo.text,
                status=MessageStatus.SENT,
                failure_reason=None,
                failure_code=None,
                turn_id=None,
                input_tokens=None,
                output_tokens=None,
                sent_at=echo.sent_at,
                created_at=now,
                updated_at=now,
            )
            return _keep(t, message, echo.platform_message_id)

    def outbound(self, phone_number_id: str, platform_message_id: str) -> Message | None:
        with self._store.lock:
            message_id = self._store.tables.platform_ids.get((phone_number_id, platform_message_id))
            message = None if message_id is None else self._store.tables.messages[message_id]
            channel = self._store.tables.channels.get(phone_number_id)
            if channel is not None and channel.deleted:
                return None  # reports about a deleted channel's messages are ignored
        return message if message is not None and message.direction is Direction.OUTBOUND else None

    def save_report(self, before: Message, after: Message) -> bool:
        with self._store.atomic() as t:
            current = t.messages.get(before.message_id)
            if current is None or _delivery_state(current) != _delivery_state(before):
                return False
            t.messages[before.message_id] = after
            return True

    def inbound(self, phone_number_id: str, platform_message_id: str) -> Message | None:
        with self._store.lock:
            message_id = self._store.tables.platform_ids.get((phone_number_id, platform_message_id))
            message = None if message_id is None else self._store.tables.messages[message_id]
        return message if message is not None and message.direction is Direction.INBOUND else None

    def save_deletion(self, before: Message, after: Message) -> bool:
        with self._store.atomic() as t:
            current = t.messages.get(before.message_id)
            if current is None or (current.status, current.updated_at) != (before.status, before.updated_at):
                return False
            t.messages[before.message_id] = after
            return True

    def save_retry(self, before: Message, after: Message) -> bool:
        with self._store.atomic() as t:
            current = t.messages.get(before.message_id)
            if current is None or (current.status, current.updated_at) != (before.status, before.updated_at):
                return False
            t.messages[before.message_id] = after
            return True


def _require_storable(inbound: InboundMessage) -> None:
    """Refuse what PostgreSQL refuses for what a message holds (NUL, lone surrogates, in its texts and its
    raw JSON's keys and values), so that a test on these adapters meets the refusal production meets."""
    texts = [inbound.platform_message_id, inbound.customer_id, inbound.customer_name, inbound.content_type]
    texts += [inbound.text, inbound.skip_reason]
    values: list[object] = [inbound.raw]
    while values:
        value = values.pop()
        if isinstance(value, dict):
            texts += value.keys()
            values += value.values()
        elif isinstance(value, list):
            values += value
        elif isinstance(value, str):
            texts.append(value)
    if not all(text is None or limits.is_storable(text) for text in texts):
        raise MessageNotStorable("the message holds NUL or a lone surrogate, which no stored text may hold")


def _delivery_state(message: Message) -> tuple[object, ...]:
    """What a delivery report reads and changes: a save is conditional on it being as it was read."""
    return (message.status, message.failure_code, message.failure_reason, message.sent_at)


def _seen(t: Tables, phone_number_id: str, platform_message_id: str) -> RecordedInbound | None:
    """The message already stored with that platform id on the channel, as a duplicate; None for none."""
    existing_id = t.platform_ids.get((phone_number_id, platform_message_id))
    if existing_id is None:
        return None
    existing = t.messages[existing_id]
    return RecordedInbound(existing.message_id, existing.conversation_id, existing.sequence_no, True)


def _active(t: Tables, agent_id: str, customer_id: str) -> Conversation | None:
    """The active conversation of the agent with the customer, if there is one."""
    return next(
        (
            c
            for c in t.conversations.values()
            if c.is_active and c.agent_id == agent_id and c.customer_id == customer_id
        ),
        None,
    )


def _keep(t: Tables, message: Message, platform_message_id: str) -> RecordedInbound:
    """Store a new message under its platform id (the key of redeliveries)."""
    t.messages[message.message_id] = message
    t.platform_ids[(message.phone_number_id, platform_message_id)] = message.message_id
    return RecordedInbound(message.message_id, message.conversation_id, message.sequence_no, False)

"""Plain domain objects for the domain's own tests: no adapter, no use case, `now` passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from attrs import evolve

from domain.channels import ChannelType
from domain.conversations import Conversation
from domain.credits import Credits
from domain.messages import Direction, InboundMessage, Message, MessageStatus, Sender
from domain.tenancy import Agent, Channel, Route
from domain.turns import Turn, TurnStatus

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
USER = "usr_1"
CHANNEL = "pn_1"
CUSTOMER = "15550001"


def a_route(channel_type: ChannelType = ChannelType.WHATSAPP, *, agent: bool = True) -> Route:
    channel = Channel(
        phone_number_id=CHANNEL,
        user_id=USER,
        type=channel_type,
        external_number="+15550000000",
        access_token="EAAG-token-0123456789",
        display_name="Shop",
        created_at=NOW,
    )
    linked = Agent("agt_1", USER, CHANNEL, "Sales", "pmpt_1", None, NOW) if agent else None
    return Route(channel=channel, agent=linked)


def an_inbound(
    text: str | None = "hi", *, sent_at: datetime = NOW, name: str | None = "Ana", **changes: Any
) -> InboundMessage:
    inbound = InboundMessage(
        phone_number_id=CHANNEL,
        platform_message_id="wamid.1",
        customer_id=CUSTOMER,
        customer_name=name,
        content_type="text",
        text=text,
        skip_reason=None,
        sent_at=sent_at,
        raw={},
    )
    return evolve(inbound, **changes)


def a_conversation(*, last_customer_message_at: datetime | None = NOW, **changes: Any) -> Conversation:
    conversation = Conversation(
        conversation_id=1,
        user_id=USER,
        agent_id="agt_1",
        phone_number_id=CHANNEL,
        customer_id=CUSTOMER,
        customer_name="Ana",
        openai_conversation_id=None,
        openai_last_item_id=None,
        is_active=True,
        last_sequence_no=3,
        created_at=NOW - timedelta(hours=1),
        last_message_at=NOW,
        last_customer_message_at=last_customer_message_at,
    )
    return evolve(conversation, **changes)


def a_message(
    message_id: int = 1,
    *,
    direction: Direction = Direction.INBOUND,
    status: MessageStatus = MessageStatus.RECEIVED,
    created_at: datetime = NOW,
    **changes: Any,
) -> Message:
    message = Message(
        message_id=message_id,
        user_id=USER,
        conversation_id=1,
        phone_number_id=CHANNEL,
        direction=direction,
        sender=Sender.CUSTOMER if direction is Direction.INBOUND else Sender.AI,
        sequence_no=message_id,
        platform_message_id=f"wamid.{message_id}" if direction is Direction.INBOUND else None,
        content_type="text",
        text=f"message {message_id}",
        status=status,
        failure_reason=None,
        failure_code=None,
        turn_id=None,
        input_tokens=None,
        output_tokens=None,
        sent_at=None,
        created_at=created_at,
        updated_at=created_at,
    )
    return evolve(message, **changes)


def a_part(
    message_id: int, status: MessageStatus = MessageStatus.PENDING, *, turn_id: int = 7, **changes: Any
) -> Message:
    return a_message(message_id, direction=Direction.OUTBOUND, status=status, turn_id=turn_id, **changes)


def a_turn(status: TurnStatus = TurnStatus.AWAITING_AI, **changes: Any) -> Turn:
    turn = Turn(
        turn_id=7,
        user_id=USER,
        conversation_id=1,
        phone_number_id=CHANNEL,
        status=status,
        inbound_ids=(1, 2),
        credits_reserved=1,
        attempts=0,
        response_id=None,
        failure_reason=None,
        created_at=NOW,
        updated_at=NOW,
    )
    return evolve(turn, **changes)


def credits(balance: int, reserved: int = 0) -> Credits:
    return Credits(user_id=USER, balance=balance, reserved=reserved, updated_at=NOW)

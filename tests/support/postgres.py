"""Builders for the PostgreSQL adapter tests: a tenant with a channel and its agent, inbound messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from psycopg_pool import ConnectionPool

from adapters.postgres.unit_of_work import PostgresUnitOfWork
from domain.channels import ChannelType
from domain.messages import InboundMessage
from domain.tenancy import Agent, Channel, Route, User
from tests.support.secrets import TEST_CIPHER

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def a_user(user_id: str = "user-1", email: str | None = None) -> User:
    return User(
        user_id=user_id,
        email=email or f"{user_id}@example.com",
        company_name="Acme",
        api_key_hash=f"hash-{user_id}",
        created_at=NOW,
    )


def a_channel(user_id: str, phone_number_id: str) -> Channel:
    return Channel(
        phone_number_id=phone_number_id,
        user_id=user_id,
        type=ChannelType.WHATSAPP,
        external_number="+15550001111",
        access_token="EAAG-secret-token",
        display_name="Support",
        created_at=NOW,
    )


def an_agent(user_id: str, phone_number_id: str, agent_id: str | None = None) -> Agent:
    return Agent(
        agent_id=agent_id or f"agent-{phone_number_id}",
        user_id=user_id,
        phone_number_id=phone_number_id,
        name="Sales bot",
        prompt_id="pmpt_123",
        prompt_version="2",
        created_at=NOW,
    )


def seed_route(pool: ConnectionPool, user_id: str = "user-1", phone_number_id: str = "pn-1") -> Route:
    """Store a user (unless stored already), a channel and its agent; return the channel's route."""
    channel, agent = a_channel(user_id, phone_number_id), an_agent(user_id, phone_number_id)
    with PostgresUnitOfWork(pool, cipher=TEST_CIPHER) as uow:
        if uow.users.get(user_id) is None:
            uow.users.add(a_user(user_id))
        uow.channels.add(channel)
        uow.agents.add(agent)
        uow.commit()
    return Route(channel=channel, agent=agent)


def an_inbound(
    route: Route,
    platform_message_id: str,
    *,
    customer_id: str = "customer-1",
    customer_name: str | None = "Ann",
    text: str | None = "hello",
    skip_reason: str | None = None,
    sent_at: datetime = NOW,
) -> InboundMessage:
    return InboundMessage(
        phone_number_id=route.channel.phone_number_id,
        platform_message_id=platform_message_id,
        customer_id=customer_id,
        customer_name=customer_name,
        content_type="text" if text is not None else "image",
        text=text,
        skip_reason=skip_reason,
        sent_at=sent_at,
        raw={"id": platform_message_id, "type": "text", "text": {"body": text}},
    )


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)

"""A relink racing the webhook on real PostgreSQL: customers write while the business moves the channel
back and forth between two agents, with webhook processes whose route caches go stale. No message is
lost or stored twice, and none is left in an archived conversation: every one ends in the active
conversation of the agent that holds the channel at the end."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from adapters.memory.rejected_deliveries import InMemoryRejectedDeliveries
from adapters.memory.services import InMemoryJobQueue, InMemoryRouteCache, SystemClock
from adapters.postgres.message_store import PostgresMessageStore
from adapters.postgres.pool import open_pool
from adapters.postgres.unit_of_work import PostgresUnitOfWork
from application.routes import ChannelRoutes
from application.use_cases.handle_inbound_message import HandleInbound, HandleInboundMessage, InboundOutcome
from application.use_cases.reject_delivery import RejectDelivery
from application.use_cases.relink_agent import RelinkAgent, RelinkAgentCommand
from domain.messages import OrderingScope
from domain.tenancy import Agent
from tests.support.postgres import NOW, an_inbound, seed_route
from tests.support.secrets import TEST_CIPHER

WEBHOOKS = 4
MESSAGES_EACH = 40
RELINKS = 12


@pytest.fixture
def pool(clean_database: str) -> Iterator[ConnectionPool]:
    pool = open_pool(clean_database, size=WEBHOOKS + 3, timeout_s=30)
    yield pool
    pool.close()


def _webhook(pool: ConnectionPool) -> HandleInboundMessage:
    """One webhook process: its own route cache, which nobody tells about relinks made elsewhere."""
    uow = lambda: PostgresUnitOfWork(pool, cipher=TEST_CIPHER)  # noqa: E731
    return HandleInboundMessage(
        PostgresMessageStore(pool),
        ChannelRoutes(uow, InMemoryRouteCache()),
        InMemoryJobQueue(),
        SystemClock(),
        RejectDelivery(InMemoryRejectedDeliveries(), SystemClock()),
        OrderingScope.CONVERSATION,
    )


def test_no_message_lands_in_an_archived_conversation_while_relinks_race_the_webhook(
    pool: ConnectionPool, clean_database: str
) -> None:
    route = seed_route(pool)
    other = Agent("agent-b", "user-1", None, "Support", "pmpt_support", None, NOW)
    with PostgresUnitOfWork(pool, cipher=TEST_CIPHER) as uow:
        uow.agents.add(other)
        uow.commit()
    uow_factory = lambda: PostgresUnitOfWork(pool, cipher=TEST_CIPHER)  # noqa: E731
    relink = RelinkAgent(
        uow_factory,
        ChannelRoutes(uow_factory, InMemoryRouteCache()),
        InMemoryJobQueue(),
        SystemClock(),
        OrderingScope.CONVERSATION,
    )
    outcomes: list[InboundOutcome] = []
    errors: list[BaseException] = []

    def customers(n: int) -> None:
        handle = _webhook(pool)
        try:
            for i in range(MESSAGES_EACH):
                inbound = an_inbound(route, f"wamid.{n}.{i}", customer_id=f"customer-{i % 3}")
                outcomes.append(handle(HandleInbound(inbound)))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=customers, args=(n,)) for n in range(WEBHOOKS)]
    for thread in threads:
        thread.start()
    agents = ["agent-b", route.agent.agent_id if route.agent else ""]
    for n in range(RELINKS):
        relink(RelinkAgentCommand(user_id="user-1", agent_id=agents[n % 2], phone_number_id="pn-1"))
        # A person relinks, not a loop: back to back, every relink would turn away the webhook statements
        # waiting on the agent's row, and a message could lose the race five times over (answered 500,
        # redelivered by Meta later).
        time.sleep(0.02)
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert len(outcomes) == WEBHOOKS * MESSAGES_EACH
    assert set(outcomes) == {InboundOutcome.QUEUED}
    with psycopg.connect(clean_database, row_factory=dict_row) as conn:
        holder = conn.execute("SELECT agent_id FROM agents WHERE phone_number_id = 'pn-1'").fetchone()
        rows = conn.execute(
            """
            SELECT m.platform_message_id, m.status, c.is_active, c.agent_id
            FROM messages m JOIN conversations c USING (conversation_id)
            """
        ).fetchall()
        archived = conn.execute("SELECT count(*) AS n FROM conversation_archives").fetchone()
    assert holder is not None
    assert archived is not None and archived["n"] > 3, "the relinks did not race the customers' messages"
    assert sorted(r["platform_message_id"] for r in rows) == sorted(
        f"wamid.{n}.{i}" for n in range(WEBHOOKS) for i in range(MESSAGES_EACH)
    )
    stranded = [r for r in rows if not r["is_active"] or r["agent_id"] != holder["agent_id"]]
    assert stranded == []
    assert {r["status"] for r in rows} == {"received"}

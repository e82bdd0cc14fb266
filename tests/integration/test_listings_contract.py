"""The storage contract of the listings and the retry, run against the in-memory and the PostgreSQL
adapters (as `test_repository_contract.py` runs the rest): conversations newest activity first with
a keyset cursor, the direction filter, ledger pages, a tenant's message by id, and the retry's
conditional save — of two concurrent retries of one message, one sends."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest
from attrs import frozen

from adapters.memory.message_store import InMemoryMessageStore
from adapters.memory.services import FixedClock, InMemoryJobQueue, InMemoryRouteCache, RecordingSender
from adapters.memory.tables import InMemoryStore
from adapters.memory.turn_store import InMemoryTurnStore
from adapters.memory.unit_of_work import InMemoryUnitOfWork
from adapters.postgres.message_store import PostgresMessageStore
from adapters.postgres.pool import open_pool
from adapters.postgres.turn_store import PostgresTurnStore
from adapters.postgres.unit_of_work import PostgresUnitOfWork
from application.ports.repositories import ConversationQuery, MessageQuery
from application.routes import ChannelRoutes
from application.use_cases.retry_message import RetryMessage, RetryMessageCommand, RetryOutcome
from domain.channels import BotState, ChannelType
from domain.messages import Direction, Message, MessageStatus, OrderingScope
from domain.tenancy import Channel
from domain.turns import Reply, Turn, TurnRefused
from tests.integration.test_repository_contract import (
    Storage,
    _record,
    _replying,
    _scope,
    _seed,
    _SqlPeek,
    _TablesPeek,
    _top_up,
    _work,
)
from tests.support.postgres import NOW, minutes
from tests.support.secrets import TEST_CIPHER

S = MessageStatus


@frozen
class Listings:
    storage: Storage
    #: Archives a conversation the way the storage holds it (no port archives one yet).
    archive: Callable[[int], None]


@pytest.fixture(params=["memory", "postgres"])
def listings(request: pytest.FixtureRequest) -> Iterator[Listings]:
    if request.param == "memory":
        store = InMemoryStore()

        def archive_in_memory(conversation_id: int) -> None:
            tables = store.tables
            tables.conversations[conversation_id] = tables.conversations[conversation_id].archive()

        storage = Storage(
            lambda: InMemoryUnitOfWork(store), InMemoryMessageStore(store), InMemoryTurnStore(store), _TablesPeek(store)
        )
        yield Listings(storage, archive_in_memory)
        return
    url = request.getfixturevalue("clean_database")
    pool = open_pool(url, size=6, timeout_s=10)

    def archive_in_postgres(conversation_id: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE conversations SET is_active = false WHERE conversation_id = %s", (conversation_id,))

    try:
        storage = Storage(
            lambda: PostgresUnitOfWork(pool, cipher=TEST_CIPHER),
            PostgresMessageStore(pool),
            PostgresTurnStore(pool),
            _SqlPeek(url),
        )
        yield Listings(storage, archive_in_postgres)
    finally:
        pool.close()


def _conversations(storage: Storage, user_id: str = "user-1", **query: Any) -> tuple[list[int], Any]:
    with storage.uow() as uow:
        page = uow.conversations.list(user_id, ConversationQuery(**query))
    return [c.conversation_id for c in page.items], page.next_cursor


def _customer_writes(storage: Storage, route: Any, customer: str, at: datetime) -> int:
    return _record(storage, route, f"wamid.{customer}.{at.isoformat()}", now=at, customer_id=customer).conversation_id


# --- conversations -----------------------------------------------------------------------------


def test_conversations_are_listed_by_newest_activity_ties_broken_by_id(listings: Listings) -> None:
    storage = listings.storage
    route = _seed(storage.uow)
    other = _seed(storage.uow, "user-2", "pn-2")
    first = _customer_writes(storage, route, "ann", NOW)
    tied_a = _customer_writes(storage, route, "bob", NOW + minutes(1))
    tied_b = _customer_writes(storage, route, "cid", NOW + minutes(1))
    _customer_writes(storage, other, "dan", NOW + minutes(2))
    _customer_writes(storage, route, "ann", NOW + minutes(3))  # ann's conversation is the newest now

    ids, cursor = _conversations(storage)

    assert ids == [first, tied_b, tied_a]
    assert cursor is None


def test_the_cursor_walks_every_conversation_once(listings: Listings) -> None:
    storage = listings.storage
    route = _seed(storage.uow)
    expected = [_customer_writes(storage, route, f"c{i}", NOW + minutes(i // 3)) for i in range(10)]

    seen: list[int] = []
    ids, cursor = _conversations(storage, limit=4)
    seen += ids
    while cursor is not None:
        ids, cursor = _conversations(storage, limit=4, cursor=cursor)
        seen += ids

    assert seen == sorted(expected, key=lambda i: (expected.index(i) // 3, i), reverse=True)


def test_conversation_filters_combine_and_stay_within_the_tenant(listings: Listings) -> None:
    storage = listings.storage
    pn1 = _seed(storage.uow)
    pn3 = _seed(storage.uow, "user-1", "pn-3")
    other = _seed(storage.uow, "user-2", "pn-2")
    ann_1 = _customer_writes(storage, pn1, "ann", NOW)
    bob_1 = _customer_writes(storage, pn1, "bob", NOW + minutes(1))
    ann_3 = _customer_writes(storage, pn3, "ann", NOW + minutes(2))
    _customer_writes(storage, other, "ann", NOW + minutes(3))
    listings.archive(bob_1)

    assert _conversations(storage, phone_number_id="pn-1")[0] == [bob_1, ann_1]
    assert _conversations(storage, customer_id="ann")[0] == [ann_3, ann_1]
    assert _conversations(storage, customer_id="ann", phone_number_id="pn-1")[0] == [ann_1]
    assert _conversations(storage, is_active=False)[0] == [bob_1]
    assert _conversations(storage, is_active=True, phone_number_id="pn-1")[0] == [ann_1]
    assert _conversations(storage, phone_number_id="pn-2")[0] == []


def test_conversations_are_filtered_by_their_bot_state(listings: Listings) -> None:
    storage = listings.storage
    route = _seed(storage.uow)
    ann = _customer_writes(storage, route, "ann", NOW)
    bob = _customer_writes(storage, route, "bob", NOW + minutes(1))
    with storage.uow() as uow:
        conversation = uow.conversations.lock("user-1", ann)
        assert conversation is not None
        uow.conversations.save_bot(conversation.pause(NOW))
        uow.commit()

    assert _conversations(storage, bot=BotState.PAUSED)[0] == [ann]
    assert _conversations(storage, bot=BotState.ACTIVE)[0] == [bob]
    assert _conversations(storage, bot=BotState.PAUSED, customer_id="bob")[0] == []


# --- messages ----------------------------------------------------------------------------------


def test_messages_are_filtered_by_direction(listings: Listings) -> None:
    storage = listings.storage
    route = _seed(storage.uow)
    turn, parts = _replying(storage, route)

    def listed(direction: Direction) -> list[int]:
        with storage.uow() as uow:
            return [m.message_id for m in uow.messages.list("user-1", MessageQuery(direction=direction)).items]

    assert listed(Direction.OUTBOUND) == sorted((p.message_id for p in parts), reverse=True)
    assert listed(Direction.INBOUND) == list(turn.inbound_ids)


def test_a_message_is_found_by_id_only_by_its_tenant(listings: Listings) -> None:
    storage = listings.storage
    route = _seed(storage.uow)
    _seed(storage.uow, "user-2", "pn-2")
    recorded = _record(storage, route, "wamid.1")

    with storage.uow() as uow:
        found = uow.messages.get("user-1", recorded.message_id)
        assert uow.messages.get("user-2", recorded.message_id) is None
        assert uow.messages.get("user-1", recorded.message_id + 1000) is None
    assert found == storage.peek.message(recorded.message_id)


# --- the ledger --------------------------------------------------------------------------------


def test_the_ledger_pages_on_entry_id(listings: Listings) -> None:
    storage = listings.storage
    _seed(storage.uow)
    _seed(storage.uow, "user-2", "pn-2")
    entries = [_top_up(storage.uow, amount).entry_id for amount in range(1, 6)]
    _top_up(storage.uow, 7, "user-2")

    with storage.uow() as uow:
        newest = uow.credits.ledger("user-1", 2)
        older = uow.credits.ledger("user-1", 2, before=newest[-1].entry_id)
        oldest = uow.credits.ledger("user-1", 2, before=older[-1].entry_id)

    assert [e.entry_id for e in newest + older + oldest] == entries[::-1]


# --- the retry's saves -------------------------------------------------------------------------


def _refused(listings: Listings) -> Message:
    """A customer's message refused for lack of credits (no credits were ever added)."""
    storage = listings.storage
    route = _seed(storage.uow)
    recorded = _record(storage, route, "wamid.1")
    work = _work(storage, _scope(recorded.conversation_id))
    refused = Turn.start(work.conversation, work.messages, route, work.credits, 1, NOW)
    assert isinstance(refused, TurnRefused)
    storage.turns.refuse(refused)
    return storage.peek.message(recorded.message_id)


def test_a_retried_customer_message_is_pending_again_before_the_later_ones(listings: Listings) -> None:
    storage = listings.storage
    failed = _refused(listings)
    later = _record(storage, _seed_route(storage), "wamid.2", now=NOW + minutes(1))
    retried = failed.retry(NOW + minutes(2))
    assert retried is not None

    assert storage.messages.save_retry(failed, retried) is True

    assert storage.peek.message(failed.message_id) == retried
    work = _work(storage, _scope(failed.conversation_id))
    assert [m.message_id for m in work.messages] == [failed.message_id, later.message_id]


def _seed_route(storage: Storage) -> Any:
    with storage.uow() as uow:
        route = uow.channels.route("pn-1")
    assert route is not None
    return route


def test_a_retry_decided_from_a_stale_read_saves_nothing(listings: Listings) -> None:
    storage = listings.storage
    failed = _refused(listings)
    retried = failed.retry(NOW + minutes(2))
    assert retried is not None
    assert storage.messages.save_retry(failed, retried) is True

    assert storage.messages.save_retry(failed, retried) is False
    assert storage.peek.message(failed.message_id) == retried


def _failed_part(storage: Storage) -> Message:
    route = _seed(storage.uow)
    turn, [part] = _replying(storage, route, "hi")
    _, change = Reply(turn, (part,), frozenset({part.message_id})).outcome(
        part.undeliverable("131026", "undeliverable", NOW + minutes(1)), NOW + minutes(1)
    )
    assert storage.turns.save_part(change)
    return storage.peek.message(part.message_id)


class _SlowSender(RecordingSender):
    """Sends after a pause, so that two retries would overlap in the send if both got there."""

    def send_text(self, channel: Channel, recipient_id: str, text: str, *, human_agent: bool = False) -> str:
        time.sleep(0.2)
        return super().send_text(channel, recipient_id, text)


class _Senders:
    def __init__(self, sender: RecordingSender) -> None:
        self.sender = sender

    def for_type(self, channel_type: ChannelType) -> RecordingSender:
        return self.sender

    def available(self, channel_type: ChannelType) -> bool:
        return True


def test_of_two_concurrent_retries_of_a_refused_part_one_sends(listings: Listings) -> None:
    storage = listings.storage
    part = _failed_part(storage)
    sender = _SlowSender()
    retry = RetryMessage(
        storage.uow,
        storage.messages,
        storage.turns,
        ChannelRoutes(storage.uow, InMemoryRouteCache()),
        _Senders(sender),
        InMemoryJobQueue(),
        FixedClock(NOW + minutes(5)),
        ordering=OrderingScope.CONVERSATION,
    )
    start = threading.Barrier(2)
    outcomes: list[RetryOutcome] = []

    def retry_once() -> None:
        start.wait()
        outcomes.append(retry(RetryMessageCommand("user-1", part.message_id)))

    threads = [threading.Thread(target=retry_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    [sent] = sender.sent
    assert sorted(outcome.retried for outcome in outcomes) == [False, True]
    stored = storage.peek.message(part.message_id)
    assert (stored.status, stored.platform_message_id, stored.failure_code) == (S.SENT, sent.platform_message_id, None)
    assert storage.messages.outbound("pn-1", sent.platform_message_id) == stored

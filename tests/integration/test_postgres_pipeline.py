"""The pipeline's PostgreSQL stores under what only a real database shows: concurrent webhook requests
and workers, each store call on its own connection, and what a statement leaves behind.

What every adapter must do alike is in test_repository_contract.py.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from adapters.postgres import message_store
from adapters.postgres.message_store import PostgresMessageStore
from adapters.postgres.pool import open_pool
from adapters.postgres.turn_store import PostgresTurnStore
from adapters.postgres.unit_of_work import PostgresUnitOfWork
from application.held_messages import release_if_answering
from application.ports.pipeline import MessageNotStorable, Work
from application.ports.repositories import MessageQuery
from application.relinking import save_relink
from domain.channels import ChannelType, policy_for
from domain.credits import CreditMovement, LedgerKind
from domain.messages import MessageStatus, OrderingScope, RecordedInbound, ScopeKey
from domain.relink import relink
from domain.tenancy import Route
from domain.turns import AIReply, Turn, TurnAnswered, TurnHeld, TurnStarted
from tests.support.postgres import NOW, an_inbound, seed_route
from tests.support.secrets import TEST_CIPHER


@pytest.fixture
def pool(clean_database: str) -> Iterator[ConnectionPool]:
    pool = open_pool(clean_database, size=12, timeout_s=10)
    yield pool
    pool.close()


@pytest.fixture
def route(pool: ConnectionPool) -> Route:
    return seed_route(pool, "user-1", "pn-1")


def _top_up(pool: ConnectionPool, amount: int) -> None:
    with PostgresUnitOfWork(pool, cipher=TEST_CIPHER) as uow:
        uow.credits.record(CreditMovement.top_up("user-1", amount, "test"), NOW)
        uow.commit()


def _scope(conversation_id: int) -> ScopeKey:
    return ScopeKey(OrderingScope.CONVERSATION, str(conversation_id))


def _start_turn(turns: PostgresTurnStore, route: Route, conversation_id: int) -> tuple[Work, Turn]:
    """The conversation's work read and its turn started, as a worker does."""
    work = turns.next_work(_scope(conversation_id))
    assert work is not None
    started = Turn.start(work.conversation, work.messages, route, work.credits, 1, NOW)
    assert isinstance(started, TurnStarted)
    turn = turns.start(started)
    assert turn is not None
    return work, turn


def _messages(pool: ConnectionPool) -> int:
    with PostgresUnitOfWork(pool, cipher=TEST_CIPHER) as uow:
        return len(uow.messages.list("user-1", MessageQuery(limit=100)).items)


# --- the webhook's message store -----------------------------------------------------------------


def test_concurrent_copies_of_one_message_store_it_once(pool: ConnectionPool, route: Route) -> None:
    store, barrier = PostgresMessageStore(pool), threading.Barrier(8)

    def record(_: int) -> RecordedInbound:
        barrier.wait()
        return store.record_inbound(route, an_inbound(route, "wamid.1"), NOW)

    with ThreadPoolExecutor(max_workers=8) as executor:
        results = list(executor.map(record, range(8)))

    assert sum(1 for r in results if not r.duplicate) == 1
    assert len({r.message_id for r in results}) == 1
    assert _messages(pool) == 1


def test_an_id_too_large_for_its_index_is_refused_as_not_storable_not_as_the_database_being_away(
    pool: ConnectionPool, route: Route
) -> None:
    # Random, so that PostgreSQL cannot compress it into the index entry's 2.7 kB.
    huge_id = "wamid." + "".join(hashlib.sha256(str(n).encode()).hexdigest() for n in range(100))

    with pytest.raises(MessageNotStorable) as refused:
        PostgresMessageStore(pool).record_inbound(route, an_inbound(route, huge_id), NOW)

    assert refused.value.reason.startswith("54000 ")  # program_limit_exceeded
    assert _messages(pool) == 0
    assert PostgresMessageStore(pool).record_inbound(route, an_inbound(route, "wamid.next"), NOW).sequence_no == 1


def test_concurrent_messages_of_one_conversation_get_distinct_numbers_in_commit_order(
    pool: ConnectionPool, route: Route
) -> None:
    store, barrier = PostgresMessageStore(pool), threading.Barrier(8)

    def record(n: int) -> RecordedInbound:
        barrier.wait()
        return store.record_inbound(route, an_inbound(route, f"wamid.{n}"), NOW)

    with ThreadPoolExecutor(max_workers=8) as executor:
        results = list(executor.map(record, range(8)))

    assert sorted(r.sequence_no for r in results) == list(range(1, 9))
    by_sequence = sorted(results, key=lambda r: r.sequence_no)
    assert [r.message_id for r in by_sequence] == sorted(r.message_id for r in results)


def test_a_copy_arriving_while_the_first_is_uncommitted_waits_and_is_a_duplicate(
    pool: ConnectionPool, route: Route, clean_database: str
) -> None:
    store = PostgresMessageStore(pool)
    inbound = an_inbound(route, "wamid.1")
    copies: list[RecordedInbound] = []
    with psycopg.connect(clean_database) as first:  # the first copy, its statement run but not yet committed
        assert route.agent is not None
        row = first.execute(
            message_store._RECORD_INBOUND,
            {
                "user_id": "user-1",
                "agent_id": route.agent.agent_id,
                "phone_number_id": "pn-1",
                "customer_id": inbound.customer_id,
                "customer_name": inbound.customer_name,
                "platform_message_id": "wamid.1",
                "content_type": "text",
                "text": "hello",
                "status": "received",
                "failure_reason": None,
                "raw": psycopg.types.json.Jsonb({}),
                "sent_at": NOW,
                "now": NOW,
            },
        ).fetchone()
        assert row is not None
        copy = threading.Thread(target=lambda: copies.append(store.record_inbound(route, inbound, NOW)))
        copy.start()
        time.sleep(0.3)
        assert not copies  # the copy waits on the first's row locks
        first.commit()
    copy.join(timeout=10)

    assert copies == [RecordedInbound(row[0], row[1], 1, duplicate=True)]


def test_the_platform_payload_is_kept_as_jsonb(pool: ConnectionPool, route: Route, clean_database: str) -> None:
    recorded = PostgresMessageStore(pool).record_inbound(route, an_inbound(route, "wamid.1"), NOW)

    with psycopg.connect(clean_database) as conn:
        row = conn.execute(
            "SELECT jsonb_typeof(raw), raw->>'id' FROM messages WHERE message_id = %s", (recorded.message_id,)
        ).fetchone()
    assert row == ("object", "wamid.1")


# --- the worker's turn store ---------------------------------------------------------------------


def test_turns_decided_on_the_same_balance_at_once_never_hold_more_than_it(pool: ConnectionPool, route: Route) -> None:
    _top_up(pool, 5)
    messages, turns = PostgresMessageStore(pool), PostgresTurnStore(pool)
    recorded = [
        messages.record_inbound(route, an_inbound(route, f"wamid.{n}", customer_id=f"c{n}"), NOW) for n in range(8)
    ]
    decisions = []
    for r in recorded:  # eight workers read the balance (5 available) before any of them holds
        work = turns.next_work(_scope(r.conversation_id))
        assert work is not None
        started = Turn.start(work.conversation, work.messages, route, work.credits, 1, NOW)
        assert isinstance(started, TurnStarted)
        decisions.append(started)
    barrier = threading.Barrier(8)

    def start(started: TurnStarted) -> bool:
        barrier.wait()
        return turns.start(started) is not None

    with ThreadPoolExecutor(max_workers=8) as executor:
        results = list(executor.map(start, decisions))

    assert results.count(True) == 5
    with PostgresUnitOfWork(pool, cipher=TEST_CIPHER) as uow:
        credits = uow.credits.get("user-1")
        statuses = [m.status for m in uow.messages.list("user-1", MessageQuery(limit=100)).items]
    assert (credits.balance, credits.reserved) == (5, 5)
    assert sorted(statuses) == sorted([MessageStatus.PROCESSING] * 5 + [MessageStatus.RECEIVED] * 3)


def test_concurrent_answers_to_one_turn_store_one_reply_and_charge_once(pool: ConnectionPool, route: Route) -> None:
    _top_up(pool, 5)
    turns = PostgresTurnStore(pool)
    recorded = PostgresMessageStore(pool).record_inbound(route, an_inbound(route, "wamid.1"), NOW)
    work, turn = _start_turn(turns, route, recorded.conversation_id)
    answers = [
        turn.answer(AIReply(f"answer {n}", f"resp_{n}", 1, 1), work.conversation, policy_for(ChannelType.WHATSAPP), NOW)
        for n in range(4)
    ]
    barrier = threading.Barrier(4)

    def answer(answered: TurnAnswered) -> bool:
        barrier.wait()
        return turns.answer(answered) is not None

    with ThreadPoolExecutor(max_workers=4) as executor:
        assert list(executor.map(answer, answers)).count(True) == 1  # type: ignore[arg-type]
    replying = turns.next_work(_scope(recorded.conversation_id))
    with PostgresUnitOfWork(pool, cipher=TEST_CIPHER) as uow:
        credits = uow.credits.get("user-1")
        charges = [e for e in uow.credits.ledger("user-1", limit=10) if e.kind is LedgerKind.CHARGE]
    assert replying is not None and [p.status for p in replying.messages] == [MessageStatus.SENDING]
    assert (credits.balance, credits.reserved, len(charges)) == (4, 0, 1)


def test_store_calls_run_without_a_transaction_and_leave_the_connection_transactional(
    clean_database: str, route: Route
) -> None:
    single = open_pool(clean_database, size=1, timeout_s=10)
    try:
        turns = PostgresTurnStore(single)
        assert not turns.has_pending(ScopeKey(OrderingScope.PHONE_NUMBER, "pn-1"))
        with single.connection() as conn:
            assert not conn.autocommit  # given back as it was taken
            conn.execute("SELECT 1")
            assert conn.info.transaction_status is psycopg.pq.TransactionStatus.INTRANS
            conn.rollback()
        with PostgresUnitOfWork(single, cipher=TEST_CIPHER) as uow:
            uow.credits.record(CreditMovement.top_up("user-1", 3, None), NOW)  # not committed: rolled back
        with PostgresUnitOfWork(single, cipher=TEST_CIPHER) as uow:
            assert uow.credits.get("user-1").balance == 0
    finally:
        single.close()


def test_a_store_call_waits_for_no_lock_it_does_not_need(
    pool: ConnectionPool, route: Route, clean_database: str
) -> None:
    """A worker's statement holds its row locks only while it runs: a webhook storing the next message of
    the same conversation is not kept waiting behind a turn's whole AI call."""
    _top_up(pool, 5)
    messages, turns = PostgresMessageStore(pool), PostgresTurnStore(pool)
    first = messages.record_inbound(route, an_inbound(route, "wamid.1"), NOW)
    work = turns.next_work(_scope(first.conversation_id))
    assert work is not None
    started = Turn.start(work.conversation, work.messages, route, work.credits, 1, NOW)
    assert isinstance(started, TurnStarted) and turns.start(started) is not None

    began = time.monotonic()
    second = messages.record_inbound(route, an_inbound(route, "wamid.2"), NOW)

    assert time.monotonic() - began < 1.0
    assert (second.conversation_id, second.sequence_no) == (first.conversation_id, 2)


# --- the plans PostgreSQL keeps --------------------------------------------------------------------


def _old_replies(database: str, message_id: int, count: int = 1000) -> None:
    """`count` old replies in the conversation of message `message_id`, in a table never analysed: the
    planner knows neither its size nor how its values spread."""
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO messages (user_id, conversation_id, phone_number_id, direction, sender, sequence_no,"
            " content_type, text, status, created_at, updated_at)"
            " SELECT user_id, conversation_id, phone_number_id, 'outbound', 'ai', 100 + n, 'text', 'an old reply',"
            " 'failed', created_at, created_at FROM messages, generate_series(1, %s) AS n WHERE message_id = %s",
            (count, message_id),
        )


@contextmanager
def _explaining(database: str) -> Iterator[tuple[ConnectionPool, list[str]]]:
    """A pool of one connection on which every statement is prepared at its first run and planned once
    for all values (a generic plan, as after its fifth run on a pooled connection), with the plan of each
    statement run (nested ones too) collected in the list as it runs."""
    plans: list[str] = []

    def explained(conn: psycopg.Connection) -> None:
        conn.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))
        for setting in (
            "SET TIME ZONE 'UTC'",
            "SET plan_cache_mode = force_generic_plan",
            "LOAD 'auto_explain'",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_nested_statements = on",
            "SET auto_explain.log_level = notice",
        ):
            conn.execute(setting)  # type: ignore[arg-type]
        conn.commit()

    explaining = ConnectionPool(
        database, min_size=1, max_size=1, configure=explained, kwargs={"prepare_threshold": 0}, open=True
    )
    try:
        yield explaining, plans
    finally:
        explaining.close()


def _scans_of_messages(plans: list[str]) -> list[str]:
    return [plan for plan in plans if "Seq Scan on messages" in plan]


def test_a_turn_never_reads_the_whole_messages_table_whatever_plan_postgresql_kept(
    pool: ConnectionPool, route: Route, clean_database: str
) -> None:
    """The turn's statements are prepared, and PostgreSQL keeps one plan per statement and connection,
    made while the table may still be small. Here every statement is planned once for all values on a
    table never analysed, with a thousand rows: a plan that scanned `messages` whole would be kept while
    the table grew, and cost more with every message the service ever stored."""
    _top_up(pool, 5)
    recorded = PostgresMessageStore(pool).record_inbound(route, an_inbound(route, "wamid.1"), NOW)
    _old_replies(clean_database, recorded.message_id)

    with _explaining(clean_database) as (explaining, plans):
        turns = PostgresTurnStore(explaining)
        work, turn = _start_turn(turns, route, recorded.conversation_id)
        answered = turn.answer(AIReply("hi", "resp_1", 1, 1), work.conversation, policy_for(ChannelType.WHATSAPP), NOW)
        assert isinstance(answered, TurnAnswered) and turns.answer(answered) is not None

    assert any("Insert on turns" in plan for plan in plans)  # the plans were seen
    assert _scans_of_messages(plans) == []


def test_a_relinks_skip_never_reads_the_whole_messages_table_whatever_plan_postgresql_kept(
    pool: ConnectionPool, route: Route, clean_database: str
) -> None:
    """The same for a relink that skips the messages nobody will answer (an agent unlinked with no
    successor): every statement it runs is looked at, the seat's locked read of its conversations'
    unanswered messages as well as the skip that changes them."""
    recorded = PostgresMessageStore(pool).record_inbound(route, an_inbound(route, "wamid.1"), NOW)
    _old_replies(clean_database, recorded.message_id)
    agent = route.agent

    with _explaining(clean_database) as (explaining, plans), PostgresUnitOfWork(explaining, cipher=TEST_CIPHER) as uow:
        decided, _ = save_relink(uow, relink(agent, agent.link(None), None), NOW)
        uow.commit()

    assert [change.message_ids for d in decided.departures for change in d.skipped] == [(recorded.message_id,)]
    assert any("LockRows" in plan and " on messages" in plan for plan in plans)  # the seat's read was seen
    assert any("Update on messages" in plan for plan in plans)  # the skip's plan was seen
    assert _scans_of_messages(plans) == []


def test_a_resume_releasing_held_messages_never_reads_the_whole_messages_table_whatever_plan_postgresql_kept(
    pool: ConnectionPool, route: Route, clean_database: str
) -> None:
    """The same for what a resume does: the conversation's held messages read, and moved (to the AI, or
    skipped as answered by a person)."""
    recorded = PostgresMessageStore(pool).record_inbound(route, an_inbound(route, "wamid.1"), NOW)
    with PostgresUnitOfWork(pool, cipher=TEST_CIPHER) as uow:
        conversation = uow.conversations.lock("user-1", recorded.conversation_id)
        assert conversation is not None
        uow.conversations.save_bot(conversation.pause(NOW))
        uow.commit()
    turns = PostgresTurnStore(pool)
    work = turns.next_work(_scope(recorded.conversation_id))
    assert work is not None
    held = Turn.start(work.conversation, work.messages, route, work.credits, 1, NOW)
    assert isinstance(held, TurnHeld) and turns.hold(held)
    _old_replies(clean_database, recorded.message_id)

    with _explaining(clean_database) as (explaining, plans), PostgresUnitOfWork(explaining, cipher=TEST_CIPHER) as uow:
        paused = uow.conversations.lock("user-1", recorded.conversation_id)
        assert paused is not None
        active = paused.resume()
        uow.conversations.save_bot(active)
        resumed = release_if_answering(uow, active, route.channel.bot, NOW)
        uow.commit()

    assert resumed is not None and resumed.answered.message_ids == (recorded.message_id,)  # a reply came after it
    assert any("Update on messages" in plan for plan in plans)  # the change's plan was seen
    assert _scans_of_messages(plans) == []

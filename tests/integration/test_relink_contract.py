"""RelinkAgent's storage contract, run against the in-memory and the PostgreSQL adapters: a relink archives,
carries the unanswered messages over, fails the waiting turn and releases its hold — no message lost or
duplicated, the ledger unchanged — and the pipeline's stores refuse what a relink moved away."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg.rows import dict_row

from adapters.memory.message_store import InMemoryMessageStore
from adapters.memory.tables import InMemoryStore
from adapters.memory.turn_store import InMemoryTurnStore
from adapters.memory.unit_of_work import InMemoryUnitOfWork
from adapters.postgres.message_store import PostgresMessageStore
from adapters.postgres.pool import open_pool
from adapters.postgres.turn_store import PostgresTurnStore
from adapters.postgres.unit_of_work import PostgresUnitOfWork
from application.relinking import save_relink
from domain.errors import Conflict
from domain.messages import MessageStatus
from domain.relink import AGENT_UNLINKED, RELINKED, relink
from domain.tenancy import Agent, Route
from domain.turns import Reply, Turn, TurnStarted, TurnStatus
from tests.integration.test_repository_contract import (
    Storage,
    _answer,
    _conversation,
    _record,
    _scope,
    _seed,
    _SqlPeek,
    _start,
    _TablesPeek,
    _top_up,
    _work,
)
from tests.support.postgres import NOW, a_channel, a_user, an_agent, minutes
from tests.support.secrets import TEST_CIPHER

LATER = NOW + minutes(5)
S = MessageStatus


class _MemoryArchives(_TablesPeek):
    def __init__(self, store: InMemoryStore) -> None:
        super().__init__(store)
        self._tables = store

    def archives(self) -> list[tuple[int, str, str | None, str]]:
        return [
            (a.conversation_id, a.old_agent_id, a.new_agent_id, a.phone_number_id)
            for a in self._tables.tables.archives.values()
        ]


class _SqlArchives(_SqlPeek):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._db = url

    def archives(self) -> list[tuple[int, str, str | None, str]]:
        with psycopg.connect(self._db, row_factory=dict_row) as conn:
            rows = conn.execute(
                "SELECT conversation_id, old_agent_id, new_agent_id, phone_number_id FROM conversation_archives "
                "ORDER BY archive_id"
            ).fetchall()
        return [(r["conversation_id"], r["old_agent_id"], r["new_agent_id"], r["phone_number_id"]) for r in rows]


@pytest.fixture(params=["memory", "postgres"])
def storage(request: pytest.FixtureRequest) -> Iterator[Storage]:
    if request.param == "memory":
        store = InMemoryStore()
        yield Storage(
            lambda: InMemoryUnitOfWork(store),
            InMemoryMessageStore(store),
            InMemoryTurnStore(store),
            _MemoryArchives(store),
        )
        return
    url = request.getfixturevalue("clean_database")
    pool = open_pool(url, size=4, timeout_s=10)
    try:
        yield Storage(
            lambda: PostgresUnitOfWork(pool, cipher=TEST_CIPHER),
            PostgresMessageStore(pool),
            PostgresTurnStore(pool),
            _SqlArchives(url),
        )
    finally:
        pool.close()


def _unlinked_agent(storage: Storage, agent_id: str = "agent-b", user_id: str = "user-1") -> Agent:
    agent = Agent(agent_id, user_id, None, "Support", "pmpt_support", None, NOW)
    with storage.uow() as uow:
        uow.agents.add(agent)
        uow.commit()
    return agent


def _relink(storage: Storage, agent: Agent, after: Agent, holder: Agent | None) -> tuple[int, ...]:
    with storage.uow() as uow:
        _, opened = save_relink(uow, relink(agent, after, holder), LATER)
        uow.commit()
    return opened


def _mid_turn(storage: Storage, route: Route) -> tuple[Turn, int, int]:
    """Message 1 in a turn awaiting the AI, message 2 received meanwhile."""
    _top_up(storage.uow, 10)
    first = _record(storage, route, "wamid.1", sent_at=NOW)
    turn = _start(storage, route, _scope(first.conversation_id))
    second = _record(storage, route, "wamid.2", sent_at=NOW + minutes(1))
    return turn, first.message_id, second.message_id


def _credits(storage: Storage) -> tuple[int, int, int]:
    with storage.uow() as uow:
        credits = uow.credits.get("user-1")
        charges = [e for e in uow.credits.ledger("user-1", 100) if e.kind == "charge"]
    return credits.balance, credits.reserved, len(charges)


def test_relink_carries_the_unanswered_messages_over_and_fails_the_waiting_turn(storage: Storage) -> None:
    route = _seed(storage.uow)
    assert route.agent is not None
    b = _unlinked_agent(storage)
    turn, first, second = _mid_turn(storage, route)

    [opened] = _relink(storage, b, b.link("pn-1"), route.agent)

    old = _conversation(storage, turn.conversation_id)
    new = _conversation(storage, opened)
    assert not old.is_active
    assert (new.agent_id, new.is_active, new.last_sequence_no, new.openai_conversation_id) == ("agent-b", True, 2, None)
    assert new.last_customer_message_at == NOW + minutes(1)
    moved = [storage.peek.message(first), storage.peek.message(second)]
    assert [(m.conversation_id, m.sequence_no, m.status, m.turn_id) for m in moved] == [
        (opened, 1, S.RECEIVED, None),
        (opened, 2, S.RECEIVED, None),
    ]
    failed = storage.peek.turn(turn.turn_id)
    assert (failed.status, failed.failure_reason) == (TurnStatus.FAILED, RELINKED)
    assert _credits(storage) == (10, 0, 0)
    assert storage.peek.archives() == [(turn.conversation_id, route.agent.agent_id, "agent-b", "pn-1")]  # type: ignore[attr-defined]
    with storage.uow() as uow:
        assert uow.agents.get("user-1", route.agent.agent_id) == route.agent.link(None)
        assert uow.agents.holder("pn-1") == b.link("pn-1")
    work = _work(storage, _scope(opened))
    assert [m.message_id for m in work.messages] == [first, second]


def test_the_old_workers_answer_changes_nothing_after_a_relink(storage: Storage) -> None:
    route = _seed(storage.uow)
    assert route.agent is not None
    b = _unlinked_agent(storage)
    turn, first, _ = _mid_turn(storage, route)
    answered = _answer(storage, turn)  # the AI answered the old agent's call during the relink

    _relink(storage, b, b.link("pn-1"), route.agent)

    assert storage.turns.answer(answered) is None
    assert _credits(storage) == (10, 0, 0)
    assert storage.peek.message(first).status is S.RECEIVED


def test_a_turn_is_not_started_on_messages_carried_over_meanwhile(storage: Storage) -> None:
    route = _seed(storage.uow)
    assert route.agent is not None
    b = _unlinked_agent(storage)
    _top_up(storage.uow, 10)
    recorded = _record(storage, route, "wamid.1")
    stale = _work(storage, _scope(recorded.conversation_id))  # a worker read the batch before the relink
    started = Turn.start(stale.conversation, stale.messages, route, stale.credits, 1, NOW)
    assert isinstance(started, TurnStarted)

    [opened] = _relink(storage, b, b.link("pn-1"), route.agent)

    assert storage.turns.start(started) is None
    assert _credits(storage) == (10, 0, 0)
    moved = storage.peek.message(recorded.message_id)
    assert (moved.conversation_id, moved.status, moved.turn_id) == (opened, S.RECEIVED, None)


def test_unlinking_skips_the_unanswered_messages_and_releases_the_hold(storage: Storage) -> None:
    route = _seed(storage.uow)
    assert route.agent is not None
    turn, first, second = _mid_turn(storage, route)

    opened = _relink(storage, route.agent, route.agent.link(None), None)

    assert opened == ()
    assert [(storage.peek.message(i).status, storage.peek.message(i).failure_reason) for i in (first, second)] == [
        (S.SKIPPED, AGENT_UNLINKED),
        (S.SKIPPED, AGENT_UNLINKED),
    ]
    assert storage.peek.turn(turn.turn_id).status is TurnStatus.FAILED
    assert _credits(storage) == (10, 0, 0)
    assert storage.peek.archives() == [(turn.conversation_id, route.agent.agent_id, None, "pn-1")]  # type: ignore[attr-defined]
    assert storage.turns.next_work(_scope(turn.conversation_id)) is None


def test_a_replying_turn_keeps_its_reply_to_deliver(storage: Storage) -> None:
    route = _seed(storage.uow)
    assert route.agent is not None
    b = _unlinked_agent(storage)
    _top_up(storage.uow, 10)
    recorded = _record(storage, route, "wamid.in")
    answered = _answer(storage, _start(storage, route, _scope(recorded.conversation_id)))
    parts = storage.turns.answer(answered)
    assert parts is not None

    assert _relink(storage, b, b.link("pn-1"), route.agent) == ()

    work = _work(storage, _scope(recorded.conversation_id))
    assert work.turn is not None and work.turn.status is TurnStatus.REPLYING
    reply = Reply(work.turn, work.messages, frozenset({parts[0].message_id}))
    _, change = reply.outcome(parts[0].sent("wamid.out", LATER), LATER)
    assert storage.turns.save_part(change)
    assert _credits(storage) == (9, 0, 1)


def test_a_stale_route_stores_nothing_for_the_agent_that_left(storage: Storage) -> None:
    route = _seed(storage.uow)
    assert route.agent is not None
    b = _unlinked_agent(storage)
    _relink(storage, b, b.link("pn-1"), route.agent)

    assert _record(storage, route, "wamid.late") is None

    fresh = Route(route.channel, b.link("pn-1"))
    recorded = _record(storage, fresh, "wamid.late")
    assert recorded is not None and not recorded.duplicate
    assert _conversation(storage, recorded.conversation_id).agent_id == "agent-b"


def test_an_agent_moving_between_channels_meets_the_same_customer_on_both(storage: Storage) -> None:
    one = _seed(storage.uow)
    two = _seed(storage.uow, phone_number_id="pn-2")
    assert one.agent is not None and two.agent is not None
    _record(storage, one, "wamid.1")
    _record(storage, two, "wamid.2")

    [opened] = _relink(storage, two.agent, two.agent.link("pn-1"), one.agent)

    assert _conversation(storage, opened).agent_id == two.agent.agent_id
    assert storage.peek.message(1).conversation_id == opened


def test_two_agents_never_hold_one_channel(storage: Storage) -> None:
    route = _seed(storage.uow)
    b = _unlinked_agent(storage)

    with pytest.raises(Conflict), storage.uow() as uow:
        uow.agents.save(b.link(route.channel.phone_number_id))


def test_a_deleted_channel_is_hidden_comes_back_for_its_tenant_and_ignores_reports(storage: Storage) -> None:
    route = _seed(storage.uow)
    with storage.uow() as uow:
        uow.users.add(a_user("user-2"))
        uow.channels.save(route.channel.delete(LATER))
        uow.commit()
    with storage.uow() as uow:
        assert uow.channels.get("user-1", "pn-1") is None
        assert uow.channels.list("user-1") == []
        found = uow.channels.route("pn-1")
        assert found is not None and found.channel.deleted
    with pytest.raises(Conflict), storage.uow() as uow:
        uow.channels.add(a_channel("user-2", "pn-1"))
    with storage.uow() as uow:
        uow.channels.add(a_channel("user-1", "pn-1"))
        uow.commit()
    with storage.uow() as uow:
        assert uow.channels.get("user-1", "pn-1") == a_channel("user-1", "pn-1")


def test_reports_about_a_deleted_channels_messages_find_nothing(storage: Storage) -> None:
    route = _seed(storage.uow)
    _top_up(storage.uow, 10)
    recorded = _record(storage, route, "wamid.in")
    answered = _answer(storage, _start(storage, route, _scope(recorded.conversation_id)), "hi")
    [part] = storage.turns.answer(answered) or ()
    reply = Reply(answered.turn, (part,), frozenset({part.message_id}))
    _, change = reply.outcome(part.sent("wamid.out", LATER), LATER)
    assert storage.turns.save_part(change)
    assert storage.messages.outbound("pn-1", "wamid.out") is not None

    with storage.uow() as uow:
        uow.channels.save(route.channel.delete(LATER))
        uow.commit()

    assert storage.messages.outbound("pn-1", "wamid.out") is None


def test_agents_without_a_channel_and_deleted_agents(storage: Storage) -> None:
    _seed(storage.uow, with_agent=False)
    b = _unlinked_agent(storage)
    c = an_agent("user-1", "pn-1", agent_id="agent-c")
    with storage.uow() as uow:
        uow.agents.add(c)
        uow.agents.save(c.delete(LATER))
        uow.commit()
    with storage.uow() as uow:
        assert uow.agents.list("user-1") == [b]
        assert uow.agents.get("user-1", "agent-c") is None
        assert uow.agents.holder("pn-1") is None


def test_messages_held_for_a_person_are_carried_over_to_the_new_agent(storage: Storage) -> None:
    from tests.integration.test_handoff_contract import _held_decision, _pause

    route = _seed(storage.uow)
    assert route.agent is not None
    b = _unlinked_agent(storage)
    held = _record(storage, route, "wamid.1", sent_at=NOW)
    _pause(storage, held.conversation_id)
    assert storage.turns.hold(_held_decision(_work(storage, _scope(held.conversation_id)), route))

    [opened] = _relink(storage, b, b.link("pn-1"), route.agent)

    moved = storage.peek.message(held.message_id)
    assert (moved.conversation_id, moved.sequence_no, moved.status) == (opened, 1, S.RECEIVED)
    new = _conversation(storage, opened)
    assert (new.agent_id, new.is_active, new.bot.value) == ("agent-b", True, "active")
    assert [m.message_id for m in _work(storage, _scope(opened)).messages] == [held.message_id]

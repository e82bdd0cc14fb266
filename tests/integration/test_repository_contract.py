"""The storage contract: one set of behaviours, run against the in-memory and the PostgreSQL adapters.

The use-case tests run on the in-memory adapters; these tests are what entitles them to: every
behaviour the use cases rely on — of the unit of work, the webhook's message store and the worker's
turn store — must be the same on both. A test here that fails for one adapter only means the fake
(or the real one) has drifted from the port. The pipeline's decisions come from the domain, as in
production: the tests decide with `Turn.start`, `Turn.answer`, `Reply.claim`…, and check that both
adapters save exactly what was decided.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, Protocol

import psycopg
import pytest
from attrs import evolve, frozen
from psycopg.rows import dict_row

from adapters.memory.message_store import InMemoryMessageStore
from adapters.memory.tables import InMemoryStore
from adapters.memory.turn_store import InMemoryTurnStore
from adapters.memory.unit_of_work import InMemoryUnitOfWork
from adapters.postgres.message_store import PostgresMessageStore
from adapters.postgres.messages import MESSAGE_COLUMNS
from adapters.postgres.pool import open_pool
from adapters.postgres.rows import entity
from adapters.postgres.turn_store import TURN_COLUMNS, PostgresTurnStore
from adapters.postgres.unit_of_work import PostgresUnitOfWork
from application.ports.pipeline import MessageNotStorable, MessageStore, TurnStore, Work
from application.ports.repositories import MessageQuery, UnitOfWork
from domain.channels import ChannelPolicy, TextUnit
from domain.conversations import Conversation
from domain.credits import CreditMovement, LedgerEntry, LedgerKind
from domain.errors import Conflict, ValidationFailed
from domain.messages import (
    DeliveryReport,
    Direction,
    Message,
    MessageStatus,
    OrderingScope,
    RecordedInbound,
    ScopeKey,
    Sender,
)
from domain.tenancy import Agent, Channel, Route, User
from domain.turns import AIReply, Reply, Turn, TurnAnswered, TurnRefused, TurnStarted, TurnStatus
from tests.support.postgres import NOW, a_channel, a_user, an_agent, an_inbound, minutes
from tests.support.secrets import TEST_CIPHER

S = MessageStatus
CHANNEL = ScopeKey(OrderingScope.PHONE_NUMBER, "pn-1")
REPORTED_AT = NOW + minutes(2)
#: A policy that cuts "part one part two" in two: the tests choose how many parts a reply has.
TWO_PARTS = ChannelPolicy(
    service_window=timedelta(hours=24),
    text_limit=9,
    text_unit=TextUnit.CHARACTERS,
    read_receipts=False,
    typing_indicator=False,
)


class Peek(Protocol):
    """Reads a stored row as it is, whatever the ports offer: what the tests check saves against."""

    def message(self, message_id: int) -> Message: ...

    def turn(self, turn_id: int) -> Turn: ...


@frozen
class Storage:
    uow: Callable[[], UnitOfWork]
    messages: MessageStore
    turns: TurnStore
    peek: Peek


class _TablesPeek:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    def message(self, message_id: int) -> Message:
        return self._store.tables.messages[message_id]

    def turn(self, turn_id: int) -> Turn:
        return self._store.tables.turns[turn_id]


class _SqlPeek:
    def __init__(self, url: str) -> None:
        self._url = url

    def _row(self, query: str, key: int) -> dict[str, Any]:
        with psycopg.connect(self._url, row_factory=dict_row) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            row = conn.execute(query, (key,)).fetchone()  # type: ignore[arg-type]
        assert row is not None, f"no row for {key}"
        return row

    def message(self, message_id: int) -> Message:
        return entity(self._row(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE message_id = %s", message_id), Message)

    def turn(self, turn_id: int) -> Turn:
        return entity(self._row(f"SELECT {TURN_COLUMNS} FROM turns WHERE turn_id = %s", turn_id), Turn)


@pytest.fixture(params=["memory", "postgres"])
def storage(request: pytest.FixtureRequest) -> Iterator[Storage]:
    if request.param == "memory":
        store = InMemoryStore()
        yield Storage(
            lambda: InMemoryUnitOfWork(store), InMemoryMessageStore(store), InMemoryTurnStore(store), _TablesPeek(store)
        )
        return
    url = request.getfixturevalue("clean_database")
    pool = open_pool(url, size=4, timeout_s=10)
    try:
        yield Storage(
            lambda: PostgresUnitOfWork(pool, cipher=TEST_CIPHER),
            PostgresMessageStore(pool),
            PostgresTurnStore(pool),
            _SqlPeek(url),
        )
    finally:
        pool.close()


UowFactory = Callable[[], UnitOfWork]


@pytest.fixture
def uow_factory(storage: Storage) -> UowFactory:
    return storage.uow


# --- builders ------------------------------------------------------------------------------------


def _seed(
    uow_factory: UowFactory, user_id: str = "user-1", phone_number_id: str = "pn-1", *, with_agent: bool = True
) -> Route:
    """Store the user (unless stored already) and a channel, with its agent unless told otherwise."""
    channel = a_channel(user_id, phone_number_id)
    agent = an_agent(user_id, phone_number_id) if with_agent else None
    with uow_factory() as uow:
        if uow.users.get(user_id) is None:
            uow.users.add(a_user(user_id))
        uow.channels.add(channel)
        if agent is not None:
            uow.agents.add(agent)
        uow.commit()
    return Route(channel=channel, agent=agent)


def _record(
    storage: Storage, route: Route, platform_message_id: str, *, now: datetime = NOW, **inbound: Any
) -> RecordedInbound:
    return storage.messages.record_inbound(route, an_inbound(route, platform_message_id, **inbound), now)


def _top_up(uow_factory: UowFactory, amount: int, user_id: str = "user-1", *, key: str | None = None) -> LedgerEntry:
    with uow_factory() as uow:
        entry = uow.credits.record(CreditMovement.top_up(user_id, amount, "test"), NOW, idempotency_key=key)
        uow.commit()
    return entry


def _conversation(storage: Storage, conversation_id: int) -> Conversation:
    with storage.uow() as uow:
        conversation = uow.conversations.get(conversation_id)
    assert conversation is not None
    return conversation


def _scope(conversation_id: int) -> ScopeKey:
    return ScopeKey(OrderingScope.CONVERSATION, str(conversation_id))


def _work(storage: Storage, scope: ScopeKey) -> Work:
    work = storage.turns.next_work(scope)
    assert work is not None
    return work


def _start(storage: Storage, route: Route, scope: ScopeKey, *, cost: int = 1, now: datetime = NOW) -> Turn:
    """Start a turn on the scope's pending batch, as the domain decides it."""
    work = _work(storage, scope)
    started = Turn.start(work.conversation, work.messages, route, work.credits, cost, now)
    assert isinstance(started, TurnStarted), started
    turn = storage.turns.start(started)
    assert turn is not None
    return turn


def _answer(storage: Storage, turn: Turn, text: str = "part one part two", *, now: datetime = NOW) -> TurnAnswered:
    answered = turn.answer(
        AIReply(text, "resp_1", input_tokens=40, output_tokens=9, last_item_id="item_1"),
        _conversation(storage, turn.conversation_id),
        TWO_PARTS,
        now,
    )
    assert isinstance(answered, TurnAnswered)
    return answered


def _replying(storage: Storage, route: Route, text: str = "part one part two") -> tuple[Turn, tuple[Message, ...]]:
    """A customer's message answered by a turn whose reply is stored (the first part claimed, none sent)."""
    _top_up(storage.uow, 10)
    recorded = _record(storage, route, "wamid.in")
    answered = _answer(storage, _start(storage, route, _scope(recorded.conversation_id)), text)
    parts = storage.turns.answer(answered)
    assert parts is not None
    return answered.turn, parts


def _sent_part(storage: Storage, route: Route, platform_message_id: str = "wamid.out") -> Message:
    turn, [part] = _replying(storage, route, "hi")
    _, change = Reply(turn, (part,), frozenset({part.message_id})).outcome(
        part.sent(platform_message_id, NOW + minutes(1)), NOW + minutes(1)
    )
    assert storage.turns.save_part(change)
    return storage.peek.message(part.message_id)


def _list(uow_factory: UowFactory, user_id: str, **query: Any) -> tuple[list[int], int | None]:
    with uow_factory() as uow:
        page = uow.messages.list(user_id, MessageQuery(**query))
    return [m.message_id for m in page.items], page.next_cursor


# --- users ---------------------------------------------------------------------------------------


def test_a_stored_user_is_found_by_id_and_by_api_key_hash(uow_factory: UowFactory) -> None:
    with uow_factory() as uow:
        uow.users.add(a_user("user-1"))
        uow.commit()

    with uow_factory() as uow:
        assert uow.users.get("user-1") == a_user("user-1")
        assert uow.users.by_api_key_hash("hash-user-1") == a_user("user-1")
        assert uow.users.get("user-2") is None
        assert uow.users.by_api_key_hash("hash-unknown") is None


def test_a_taken_email_is_a_conflict_on_the_email_field(uow_factory: UowFactory) -> None:
    with uow_factory() as uow:
        uow.users.add(a_user("user-1", email="boss@example.com"))
        uow.commit()

    with pytest.raises(Conflict, match="e-mail") as raised, uow_factory() as uow:
        uow.users.add(a_user("user-2", email="boss@example.com"))
    assert raised.value.field == "email"
    with uow_factory() as uow:
        assert uow.users.get("user-2") is None


def test_a_taken_user_id_is_a_conflict_and_keeps_the_first_user(uow_factory: UowFactory) -> None:
    with uow_factory() as uow:
        uow.users.add(a_user("user-1"))
        uow.commit()

    taken = a_user("user-1", email="someone-else@example.com")
    with pytest.raises(Conflict) as raised, uow_factory() as uow:
        uow.users.add(taken)
    assert raised.value.field == "user_id"
    with uow_factory() as uow:
        assert uow.users.get("user-1") == a_user("user-1")


def test_an_api_key_hash_in_use_is_a_conflict(uow_factory: UowFactory) -> None:
    with uow_factory() as uow:
        uow.users.add(a_user("user-1"))
        uow.commit()

    with pytest.raises(Conflict) as raised, uow_factory() as uow:
        uow.users.add(evolve(a_user("user-2"), api_key_hash="hash-user-1"))
    assert raised.value.field == "api_key"
    with uow_factory() as uow:
        assert uow.users.get("user-2") is None
        assert uow.users.by_api_key_hash("hash-user-1") == a_user("user-1")


# --- channels and agents -------------------------------------------------------------------------


def test_a_channel_is_found_only_by_the_user_it_belongs_to(uow_factory: UowFactory) -> None:
    _seed(uow_factory, "user-1", "pn-1")
    _seed(uow_factory, "user-2", "pn-2")

    with uow_factory() as uow:
        assert uow.channels.get("user-1", "pn-1") == a_channel("user-1", "pn-1")
        assert uow.channels.get("user-1", "pn-2") is None
        assert uow.channels.get("user-1", "pn-unknown") is None


def test_channels_are_listed_per_user_oldest_first(uow_factory: UowFactory) -> None:
    with uow_factory() as uow:
        uow.users.add(a_user("user-1"))
        uow.users.add(a_user("user-2"))
        uow.channels.add(evolve(a_channel("user-1", "pn-a"), created_at=NOW + minutes(2)))
        uow.channels.add(evolve(a_channel("user-1", "pn-b"), created_at=NOW))
        uow.channels.add(evolve(a_channel("user-1", "pn-c"), created_at=NOW))
        uow.channels.add(a_channel("user-2", "pn-z"))
        uow.commit()

    with uow_factory() as uow:
        assert [c.phone_number_id for c in uow.channels.list("user-1")] == ["pn-b", "pn-c", "pn-a"]
        assert [c.phone_number_id for c in uow.channels.list("user-2")] == ["pn-z"]
        assert uow.channels.list("user-3") == []


def test_route_gives_the_channel_with_its_agent_and_a_channel_without_one(uow_factory: UowFactory) -> None:
    with_agent = _seed(uow_factory, "user-1", "pn-1")
    _seed(uow_factory, "user-1", "pn-bare", with_agent=False)

    with uow_factory() as uow:
        assert uow.channels.route("pn-1") == with_agent
        assert uow.channels.route("pn-bare") == Route(channel=a_channel("user-1", "pn-bare"), agent=None)
        assert uow.channels.route("pn-unknown") is None


def test_a_registered_phone_number_id_is_a_conflict_even_for_another_user(uow_factory: UowFactory) -> None:
    _seed(uow_factory, "user-1", "pn-1")
    with uow_factory() as uow:
        uow.users.add(a_user("user-2"))
        uow.commit()

    with pytest.raises(Conflict, match="pn-1") as raised, uow_factory() as uow:
        uow.channels.add(a_channel("user-2", "pn-1"))
    assert raised.value.field == "phone_number_id"
    with uow_factory() as uow:
        assert uow.channels.get("user-1", "pn-1") == a_channel("user-1", "pn-1")


def test_an_agent_is_found_and_listed_only_by_the_user_it_belongs_to(uow_factory: UowFactory) -> None:
    _seed(uow_factory, "user-1", "pn-1")
    _seed(uow_factory, "user-1", "pn-2")
    _seed(uow_factory, "user-2", "pn-3")

    with uow_factory() as uow:
        assert uow.agents.get("user-1", "agent-pn-1") == an_agent("user-1", "pn-1")
        assert uow.agents.get("user-1", "agent-pn-3") is None
        assert [a.agent_id for a in uow.agents.list("user-1")] == ["agent-pn-1", "agent-pn-2"]
        assert [a.agent_id for a in uow.agents.list("user-2")] == ["agent-pn-3"]


def test_a_second_agent_on_a_channel_is_a_conflict(uow_factory: UowFactory) -> None:
    _seed(uow_factory, "user-1", "pn-1")

    with pytest.raises(Conflict, match="already has an agent") as raised, uow_factory() as uow:
        uow.agents.add(an_agent("user-1", "pn-1", agent_id="agent-2"))
    assert raised.value.field == "phone_number_id"
    with uow_factory() as uow:
        assert uow.agents.get("user-1", "agent-2") is None


def test_a_taken_agent_id_is_a_conflict_and_keeps_the_first_agent(uow_factory: UowFactory) -> None:
    _seed(uow_factory, "user-1", "pn-1")
    _seed(uow_factory, "user-1", "pn-2", with_agent=False)

    with pytest.raises(Conflict) as raised, uow_factory() as uow:
        uow.agents.add(an_agent("user-1", "pn-2", agent_id="agent-pn-1"))
    assert raised.value.field == "agent_id"
    with uow_factory() as uow:
        assert uow.agents.get("user-1", "agent-pn-1") == an_agent("user-1", "pn-1")
        route = uow.channels.route("pn-2")
    assert route is not None and route.agent is None


# --- credits -------------------------------------------------------------------------------------


def test_a_user_without_an_account_has_a_zero_balance(uow_factory: UowFactory) -> None:
    _seed(uow_factory)

    with uow_factory() as uow:
        credits = uow.credits.get("user-1")
        assert uow.credits.ledger("user-1", limit=10) == []
    assert (credits.user_id, credits.balance, credits.reserved, credits.available) == ("user-1", 0, 0, 0)


def test_top_ups_add_up_and_each_writes_a_ledger_entry(uow_factory: UowFactory) -> None:
    _seed(uow_factory)
    with uow_factory() as uow:
        first = uow.credits.record(CreditMovement.top_up("user-1", 10, "welcome"), NOW)
        second = uow.credits.record(CreditMovement.top_up("user-1", 5, None), NOW + minutes(1))
        uow.commit()

    assert (first.kind, first.amount, first.balance_after, first.reason, first.turn_id) == (
        LedgerKind.TOP_UP,
        10,
        10,
        "welcome",
        None,
    )
    assert (second.amount, second.balance_after, second.reason, second.created_at) == (5, 15, None, NOW + minutes(1))
    with uow_factory() as uow:
        credits = uow.credits.get("user-1")
    assert (credits.balance, credits.reserved, credits.updated_at) == (15, 0, NOW + minutes(1))


def test_a_top_up_replayed_with_its_idempotency_key_returns_the_first_entry_and_changes_nothing(
    uow_factory: UowFactory,
) -> None:
    _seed(uow_factory)
    first = _top_up(uow_factory, 10, key="order-42")

    again = _top_up(uow_factory, 10, key="order-42")

    assert again == first
    with uow_factory() as uow:
        assert uow.credits.get("user-1").balance == 10
        assert uow.credits.ledger("user-1", limit=10) == [first]


def test_an_idempotency_key_belongs_to_one_user(uow_factory: UowFactory) -> None:
    _seed(uow_factory, "user-1", "pn-1")
    _seed(uow_factory, "user-2", "pn-2")

    mine = _top_up(uow_factory, 10, "user-1", key="order-1")
    theirs = _top_up(uow_factory, 7, "user-2", key="order-1")

    assert mine.entry_id != theirs.entry_id
    with uow_factory() as uow:
        assert (uow.credits.get("user-1").balance, uow.credits.get("user-2").balance) == (10, 7)


def test_only_a_movement_of_the_balance_is_recorded_in_the_ledger(uow_factory: UowFactory) -> None:
    _seed(uow_factory)

    with pytest.raises(ValueError), uow_factory() as uow:
        uow.credits.record(CreditMovement.hold("user-1", 1), NOW)


def test_the_ledger_lists_top_ups_and_charges_newest_first_up_to_the_limit(storage: Storage) -> None:
    route = _seed(storage.uow)
    _seed(storage.uow, "user-2", "pn-2")
    _top_up(storage.uow, 3, "user-2")
    turn, _ = _replying(storage, route)  # a top-up of 10, then the turn's charge of 1
    refill = _top_up(storage.uow, 5)

    with storage.uow() as uow:
        ledger = uow.credits.ledger("user-1", limit=10)
        assert uow.credits.ledger("user-1", limit=2) == ledger[:2]
    assert [(e.kind, e.amount, e.balance_after, e.turn_id) for e in ledger] == [
        (LedgerKind.TOP_UP, 5, 14, None),
        (LedgerKind.CHARGE, -1, 9, turn.turn_id),
        (LedgerKind.TOP_UP, 10, 10, None),
    ]
    assert ledger[0] == refill


# --- recording inbound messages ------------------------------------------------------------------


def test_the_first_message_opens_a_conversation_and_the_next_ones_continue_it_in_sequence(
    storage: Storage,
) -> None:
    route = _seed(storage.uow)
    first = _record(storage, route, "wamid.1", sent_at=NOW - minutes(3))
    second = _record(storage, route, "wamid.2", sent_at=NOW - minutes(1), now=NOW + minutes(1))
    third = _record(storage, route, "wamid.3", customer_name=None, sent_at=NOW - minutes(2), now=NOW + minutes(2))

    assert [r.sequence_no for r in (first, second, third)] == [1, 2, 3]
    assert first.conversation_id == second.conversation_id == third.conversation_id
    assert not any(r.duplicate for r in (first, second, third))
    conversation = _conversation(storage, first.conversation_id)
    assert (conversation.user_id, conversation.agent_id, conversation.phone_number_id) == (
        "user-1",
        "agent-pn-1",
        "pn-1",
    )
    assert (conversation.customer_id, conversation.customer_name, conversation.is_active) == ("customer-1", "Ann", True)
    assert conversation.last_customer_message_at == NOW - minutes(1)  # the latest sent_at, not the last received
    assert (conversation.created_at, conversation.last_message_at) == (NOW, NOW + minutes(2))
    assert (conversation.openai_conversation_id, conversation.openai_last_item_id) == (None, None)


def test_a_later_name_replaces_the_customer_name_and_a_missing_one_keeps_it(storage: Storage) -> None:
    route = _seed(storage.uow)
    first = _record(storage, route, "wamid.1", customer_name=None)
    _record(storage, route, "wamid.2", customer_name="Ann")
    _record(storage, route, "wamid.3", customer_name="Ann B.")
    _record(storage, route, "wamid.4", customer_name=None)

    assert _conversation(storage, first.conversation_id).customer_name == "Ann B."


def test_last_message_at_never_moves_back(storage: Storage) -> None:
    route = _seed(storage.uow)
    first = _record(storage, route, "wamid.1", now=NOW + minutes(5))
    _record(storage, route, "wamid.2", now=NOW)

    assert _conversation(storage, first.conversation_id).last_message_at == NOW + minutes(5)


def test_the_conversation_is_stored_as_the_domain_numbers_it(storage: Storage) -> None:
    route = _seed(storage.uow)
    first = an_inbound(route, "wamid.1", sent_at=NOW - minutes(3))
    second = an_inbound(route, "wamid.2", customer_name="Ann B.", sent_at=NOW - minutes(4))

    recorded = storage.messages.record_inbound(route, first, NOW)
    storage.messages.record_inbound(route, second, NOW + minutes(1))

    assert route.agent is not None
    decided = (
        Conversation.open(recorded.conversation_id, "user-1", route.agent.agent_id, first, NOW)
        .receive(first, NOW)
        .receive(second, NOW + minutes(1))
    )
    assert _conversation(storage, recorded.conversation_id) == decided


def test_each_customer_gets_a_conversation_of_their_own(storage: Storage) -> None:
    route = _seed(storage.uow)
    ann = _record(storage, route, "wamid.1", customer_id="ann")
    bob = _record(storage, route, "wamid.2", customer_id="bob")

    assert ann.conversation_id != bob.conversation_id
    assert (ann.sequence_no, bob.sequence_no) == (1, 1)


def test_an_answerable_message_is_stored_received(storage: Storage) -> None:
    route = _seed(storage.uow)
    recorded = _record(storage, route, "wamid.1", sent_at=NOW - minutes(1))

    assert storage.peek.message(recorded.message_id) == Message(
        message_id=recorded.message_id,
        user_id="user-1",
        conversation_id=recorded.conversation_id,
        phone_number_id="pn-1",
        direction=Direction.INBOUND,
        sender=Sender.CUSTOMER,
        sequence_no=1,
        platform_message_id="wamid.1",
        content_type="text",
        text="hello",
        status=S.RECEIVED,
        failure_reason=None,
        failure_code=None,
        turn_id=None,
        input_tokens=None,
        output_tokens=None,
        sent_at=NOW - minutes(1),
        created_at=NOW,
        updated_at=NOW,
    )


def test_a_message_that_cannot_be_answered_is_stored_skipped_with_its_reason(storage: Storage) -> None:
    route = _seed(storage.uow)
    recorded = _record(storage, route, "wamid.img", text=None, skip_reason="image messages are not answered")

    message = storage.peek.message(recorded.message_id)
    assert (message.status, message.failure_reason, message.content_type, message.text) == (
        S.SKIPPED,
        "image messages are not answered",
        "image",
        None,
    )
    assert not storage.turns.has_pending(_scope(recorded.conversation_id))
    assert storage.turns.next_work(_scope(recorded.conversation_id)) is None


def test_a_redelivered_message_is_a_duplicate_and_changes_nothing(storage: Storage) -> None:
    route = _seed(storage.uow)
    first = _record(storage, route, "wamid.1")
    conversation_before = _conversation(storage, first.conversation_id)

    again = _record(
        storage, route, "wamid.1", customer_name="Someone Else", sent_at=NOW + minutes(9), now=NOW + minutes(9)
    )

    assert again == RecordedInbound(first.message_id, first.conversation_id, first.sequence_no, duplicate=True)
    assert _conversation(storage, first.conversation_id) == conversation_before
    assert _list(storage.uow, "user-1")[0] == [first.message_id]
    assert _record(storage, route, "wamid.2").sequence_no == 2  # a redelivery uses up no sequence number


@pytest.mark.parametrize(
    "holding",
    [
        {"text": "a NUL \x00 in the text"},
        {"customer_name": "half a character \ud83d"},
        {"raw": {"id": "wamid.1", "type": "text", "text": {"body": "NUL \x00 in the raw JSON"}}},
        {"raw": {"id": "wamid.1", "unread\x00key": True}},
        {"raw": {"id": "wamid.1", "list": [1, ["\udfff"]]}},
    ],
    ids=["nul-text", "surrogate-name", "nul-raw-value", "nul-raw-key", "surrogate-raw-nested"],
)
def test_a_message_holding_what_no_stored_text_may_hold_is_refused_and_leaves_nothing(
    storage: Storage, holding: dict[str, Any]
) -> None:
    route = _seed(storage.uow)

    with pytest.raises(MessageNotStorable):
        storage.messages.record_inbound(route, evolve(an_inbound(route, "wamid.1"), **holding), NOW)

    assert _list(storage.uow, "user-1")[0] == []
    assert _record(storage, route, "wamid.2").sequence_no == 1  # no conversation was opened either


def test_the_same_platform_id_on_another_channel_is_another_message(storage: Storage) -> None:
    route = _seed(storage.uow, "user-1", "pn-1")
    other = _seed(storage.uow, "user-1", "pn-2")
    first = _record(storage, route, "id-1")

    elsewhere = _record(storage, other, "id-1")

    assert not elsewhere.duplicate
    assert elsewhere.message_id != first.message_id
    assert elsewhere.conversation_id != first.conversation_id


def test_recording_needs_a_channel_with_an_agent(storage: Storage) -> None:
    route = _seed(storage.uow, with_agent=False)

    with pytest.raises(ValueError):
        _record(storage, route, "wamid.1")


def test_the_ai_conversation_is_linked_once(storage: Storage) -> None:
    route = _seed(storage.uow)
    recorded = _record(storage, route, "wamid.1")
    conversation = _conversation(storage, recorded.conversation_id)

    storage.turns.link_ai(conversation.link_ai("conv_abc"))
    storage.turns.link_ai(conversation.link_ai("conv_late"))  # a worker that lost its lock, too late

    assert _conversation(storage, recorded.conversation_id).openai_conversation_id == "conv_abc"
    with storage.uow() as uow:
        assert uow.conversations.get(recorded.conversation_id + 1000) is None


# --- pending work --------------------------------------------------------------------------------


def test_a_conversations_work_is_its_received_messages_in_order_with_the_tenants_credits(storage: Storage) -> None:
    route = _seed(storage.uow)
    _top_up(storage.uow, 7)
    first = _record(storage, route, "wamid.1")
    _record(storage, route, "wamid.skip", text=None, skip_reason="sticker")
    third = _record(storage, route, "wamid.3")
    _record(storage, route, "wamid.other", customer_id="bob")

    work = _work(storage, _scope(first.conversation_id))

    assert [(m.message_id, m.sequence_no) for m in work.messages] == [(first.message_id, 1), (third.message_id, 3)]
    assert work.turn is None
    assert work.conversation == _conversation(storage, first.conversation_id)
    assert (work.credits.user_id, work.credits.balance, work.credits.reserved) == ("user-1", 7, 0)
    assert storage.turns.has_pending(_scope(first.conversation_id))


def test_a_tenant_never_credited_has_no_credits_in_its_work(storage: Storage) -> None:
    route = _seed(storage.uow)
    recorded = _record(storage, route, "wamid.1")

    credits = _work(storage, _scope(recorded.conversation_id)).credits

    assert (credits.balance, credits.reserved, credits.available) == (0, 0, 0)


def test_a_channels_batches_stop_at_the_first_message_of_another_conversation(storage: Storage) -> None:
    route = _seed(storage.uow)
    ann_1 = _record(storage, route, "wamid.1", customer_id="ann")
    ann_2 = _record(storage, route, "wamid.2", customer_id="ann")
    bob_1 = _record(storage, route, "wamid.3", customer_id="bob")
    ann_3 = _record(storage, route, "wamid.4", customer_id="ann")

    batches: list[list[int]] = []
    while storage.turns.has_pending(CHANNEL):
        work = _work(storage, CHANNEL)
        batches.append([m.message_id for m in work.messages])
        refused = Turn.start(work.conversation, work.messages, route, work.credits, 1, NOW)
        assert isinstance(refused, TurnRefused)  # no credits: refused, which takes the batch out
        storage.turns.refuse(refused)
    assert storage.turns.next_work(CHANNEL) is None
    assert batches == [[ann_1.message_id, ann_2.message_id], [bob_1.message_id], [ann_3.message_id]]


def test_a_channels_work_covers_only_its_own_channel(storage: Storage) -> None:
    route = _seed(storage.uow, "user-1", "pn-1")
    other = _seed(storage.uow, "user-1", "pn-2")
    elsewhere = _record(storage, other, "wamid.1")
    here = _record(storage, route, "wamid.2")

    assert [m.message_id for m in _work(storage, CHANNEL).messages] == [here.message_id]
    other_work = _work(storage, ScopeKey(OrderingScope.PHONE_NUMBER, "pn-2"))
    assert [m.message_id for m in other_work.messages] == [elsewhere.message_id]


def test_a_scope_with_nothing_received_has_no_work(storage: Storage) -> None:
    route = _seed(storage.uow)
    skipped = _record(storage, route, "wamid.1", text=None, skip_reason="sticker")

    assert storage.turns.next_work(CHANNEL) is None
    assert not storage.turns.has_pending(CHANNEL)
    assert storage.turns.next_work(_scope(skipped.conversation_id)) is None
    assert storage.turns.next_work(_scope(skipped.conversation_id + 1000)) is None


def test_a_turn_left_awaiting_the_ai_comes_first_with_its_own_messages(storage: Storage) -> None:
    route = _seed(storage.uow)
    _top_up(storage.uow, 5)
    first = _record(storage, route, "wamid.1")
    turn = _start(storage, route, _scope(first.conversation_id))
    _record(storage, route, "wamid.2")  # written while the turn was under way

    work = _work(storage, _scope(first.conversation_id))

    assert work.turn == turn
    assert [m.message_id for m in work.messages] == [first.message_id]
    assert _work(storage, CHANNEL).turn == turn


def test_a_replying_turn_comes_with_its_reply_parts(storage: Storage) -> None:
    route = _seed(storage.uow)
    turn, parts = _replying(storage, route)

    work = _work(storage, _scope(turn.conversation_id))

    assert work.turn is not None and work.turn.status is TurnStatus.REPLYING
    assert work.messages == parts


# --- turns ---------------------------------------------------------------------------------------


def test_a_started_turn_holds_its_credits_and_takes_its_batch(storage: Storage) -> None:
    route = _seed(storage.uow)
    _top_up(storage.uow, 5)
    ann_1 = _record(storage, route, "wamid.1")
    ann_2 = _record(storage, route, "wamid.2")
    work = _work(storage, _scope(ann_1.conversation_id))
    started = Turn.start(work.conversation, work.messages, route, work.credits, 2, NOW + minutes(1))
    assert isinstance(started, TurnStarted)

    turn = storage.turns.start(started)

    assert turn == started.turn(turn.turn_id if turn else 0)
    for recorded in (ann_1, ann_2):
        message = storage.peek.message(recorded.message_id)
        assert (message.status, message.turn_id, message.updated_at) == (S.PROCESSING, turn.turn_id, NOW + minutes(1))
    with storage.uow() as uow:
        credits = uow.credits.get("user-1")
    assert (credits.balance, credits.reserved) == (5, 2)
    assert not storage.turns.has_pending(_scope(ann_1.conversation_id))


def test_a_turn_whose_credits_were_spent_meanwhile_is_not_started_and_changes_nothing(storage: Storage) -> None:
    route = _seed(storage.uow)
    _top_up(storage.uow, 1)
    ann = _record(storage, route, "wamid.1", customer_id="ann")
    bob = _record(storage, route, "wamid.2", customer_id="bob")
    ann_work, bob_work = _work(storage, _scope(ann.conversation_id)), _work(storage, _scope(bob.conversation_id))
    ann_start = Turn.start(ann_work.conversation, ann_work.messages, route, ann_work.credits, 1, NOW)
    bob_start = Turn.start(bob_work.conversation, bob_work.messages, route, bob_work.credits, 1, NOW)
    assert isinstance(ann_start, TurnStarted) and isinstance(bob_start, TurnStarted)  # both read 1 available

    assert storage.turns.start(ann_start) is not None
    assert storage.turns.start(bob_start) is None

    assert storage.peek.message(bob.message_id).status is S.RECEIVED
    with storage.uow() as uow:
        credits = uow.credits.get("user-1")
    assert (credits.balance, credits.reserved) == (1, 1)
    assert [m.message_id for m in _work(storage, _scope(bob.conversation_id)).messages] == [bob.message_id]


def test_a_refused_batch_fails_with_its_reason_and_nothing_else_moves(storage: Storage) -> None:
    route = _seed(storage.uow)
    first = _record(storage, route, "wamid.1")
    work = _work(storage, _scope(first.conversation_id))
    refused = Turn.start(work.conversation, work.messages, route, work.credits, 1, NOW + minutes(1))
    assert isinstance(refused, TurnRefused)
    later = _record(storage, route, "wamid.2")

    storage.turns.refuse(refused)

    failed = storage.peek.message(first.message_id)
    assert (failed.status, failed.failure_reason, failed.updated_at) == (
        S.FAILED,
        "insufficient_credits",
        NOW + minutes(1),
    )
    assert storage.peek.message(later.message_id).status is S.RECEIVED


def test_a_turn_is_saved_only_from_the_state_it_was_decided_from(storage: Storage) -> None:
    route = _seed(storage.uow)
    _top_up(storage.uow, 5)
    recorded = _record(storage, route, "wamid.1")
    turn = _start(storage, route, _scope(recorded.conversation_id))

    resumed = turn.resume(NOW + minutes(1))
    assert storage.turns.save_turn(resumed, before=TurnStatus.AWAITING_AI)
    assert not storage.turns.save_turn(resumed.resume(NOW + minutes(2)), before=TurnStatus.REPLYING)

    assert storage.peek.turn(turn.turn_id) == resumed


def test_an_answer_stores_the_parts_answers_the_batch_and_charges_the_turn_at_once(storage: Storage) -> None:
    route = _seed(storage.uow)
    _top_up(storage.uow, 5)
    recorded = _record(storage, route, "wamid.1")
    turn = _start(storage, route, _scope(recorded.conversation_id))
    _record(storage, route, "wamid.2")  # the customer wrote again meanwhile: sequence 2
    answered = _answer(storage, turn, now=NOW + minutes(1))

    parts = storage.turns.answer(answered)

    assert parts is not None
    assert [(p.text, p.sequence_no, p.status, p.direction, p.turn_id) for p in parts] == [
        ("part one", 3, S.SENDING, Direction.OUTBOUND, turn.turn_id),
        ("part two", 4, S.PENDING, Direction.OUTBOUND, turn.turn_id),
    ]
    assert [(p.input_tokens, p.output_tokens) for p in parts] == [(40, 9), (None, None)]
    assert [storage.peek.message(p.message_id) for p in parts] == list(parts)
    assert storage.peek.turn(turn.turn_id).status is TurnStatus.REPLYING
    assert storage.peek.turn(turn.turn_id).response_id == "resp_1"
    assert storage.peek.message(recorded.message_id).status is S.ANSWERED
    conversation = _conversation(storage, turn.conversation_id)
    assert (conversation.last_sequence_no, conversation.openai_last_item_id) == (4, "item_1")
    assert conversation.last_message_at == NOW + minutes(1)
    with storage.uow() as uow:
        credits = uow.credits.get("user-1")
        [charge, _] = uow.credits.ledger("user-1", limit=10)
    assert (credits.balance, credits.reserved) == (4, 0)
    assert (charge.kind, charge.amount, charge.balance_after, charge.turn_id) == (
        LedgerKind.CHARGE,
        -1,
        4,
        turn.turn_id,
    )


def test_an_answer_to_a_turn_that_moved_on_changes_nothing(storage: Storage) -> None:
    route = _seed(storage.uow)
    _top_up(storage.uow, 5)
    recorded = _record(storage, route, "wamid.1")
    turn = _start(storage, route, _scope(recorded.conversation_id))
    answered = _answer(storage, turn)
    assert storage.turns.answer(answered) is not None

    assert storage.turns.answer(answered) is None  # a second worker, with the same decision

    assert len(_work(storage, _scope(turn.conversation_id)).messages) == 2
    with storage.uow() as uow:
        assert uow.credits.get("user-1").balance == 4
        assert len(uow.credits.ledger("user-1", limit=10)) == 2


def test_an_answer_without_a_last_item_keeps_the_conversations_one(storage: Storage) -> None:
    route = _seed(storage.uow)
    first, _ = _replying(storage, route)  # the conversation's last item is item_1 now
    assert storage.turns.save_turn(first.finish(NOW), before=TurnStatus.REPLYING)
    _record(storage, route, "wamid.2")
    turn = _start(storage, route, _scope(first.conversation_id))
    conversation = _conversation(storage, turn.conversation_id)
    answered = turn.answer(AIReply("later", None, None, None), conversation, TWO_PARTS, NOW)
    assert isinstance(answered, TurnAnswered)

    assert storage.turns.answer(answered) is not None

    assert _conversation(storage, turn.conversation_id).openai_last_item_id == "item_1"


def test_a_failed_turn_releases_its_hold_and_fails_its_batch_once(storage: Storage) -> None:
    route = _seed(storage.uow)
    _top_up(storage.uow, 5)
    recorded = _record(storage, route, "wamid.1")
    turn = _start(storage, route, _scope(recorded.conversation_id))
    failed = turn.fail("ai_failed: 503 after 4 attempts", NOW + minutes(1))

    assert storage.turns.fail(failed) is True
    assert storage.turns.fail(failed) is False
    assert storage.turns.answer(_answer(storage, turn)) is None

    stored = storage.peek.turn(turn.turn_id)
    assert (stored.status, stored.failure_reason) == (TurnStatus.FAILED, "ai_failed: 503 after 4 attempts")
    message = storage.peek.message(recorded.message_id)
    assert (message.status, message.failure_reason) == (S.FAILED, "ai_failed: 503 after 4 attempts")
    with storage.uow() as uow:
        credits = uow.credits.get("user-1")
        assert [e.kind for e in uow.credits.ledger("user-1", limit=10)] == [LedgerKind.TOP_UP]
    assert (credits.balance, credits.reserved) == (5, 0)


def test_a_failure_decided_for_a_turn_that_was_answered_changes_nothing(storage: Storage) -> None:
    route = _seed(storage.uow)
    _top_up(storage.uow, 5)
    recorded = _record(storage, route, "wamid.1")
    turn = _start(storage, route, _scope(recorded.conversation_id))
    assert storage.turns.answer(_answer(storage, turn)) is not None

    assert storage.turns.fail(turn.fail("too late", NOW)) is False

    assert storage.peek.message(recorded.message_id).status is S.ANSWERED
    with storage.uow() as uow:
        assert uow.credits.get("user-1").reserved == 0


# --- a reply's parts -----------------------------------------------------------------------------


def test_a_part_is_claimed_once(storage: Storage) -> None:
    route = _seed(storage.uow)
    turn, parts = _replying(storage, route)
    reply = Reply(turn, parts)

    _, claim = reply.claim(parts[1], NOW + minutes(1))

    assert storage.turns.save_part(claim) is True
    assert storage.turns.save_part(claim) is False  # another worker, with the same decision
    assert storage.peek.message(parts[1].message_id) == claim.part


def test_a_sent_part_keeps_its_platform_id_and_send_time(storage: Storage) -> None:
    route = _seed(storage.uow)

    part = _sent_part(storage, route, "wamid.out")

    assert (part.status, part.platform_message_id, part.sent_at) == (S.SENT, "wamid.out", NOW + minutes(1))


def test_a_failed_send_keeps_the_channels_code_and_reason(storage: Storage) -> None:
    route = _seed(storage.uow)
    turn, parts = _replying(storage, route)
    reply = Reply(turn, parts, frozenset({parts[0].message_id}))

    _, change = reply.outcome(parts[0].undeliverable("131047", "Re-engagement message", NOW + minutes(1)), NOW)

    assert storage.turns.save_part(change)
    stored = storage.peek.message(parts[0].message_id)
    assert (stored.status, stored.failure_code, stored.failure_reason) == (S.FAILED, "131047", "Re-engagement message")
    assert storage.peek.turn(turn.turn_id).status is TurnStatus.REPLYING  # a part is still to go


def test_the_last_parts_outcome_finishes_its_turn_in_the_same_change(storage: Storage) -> None:
    route = _seed(storage.uow)
    turn, parts = _replying(storage, route)
    reply = Reply(turn, parts, frozenset({parts[0].message_id}))
    reply, first = reply.outcome(parts[0].sent("wamid.a", NOW), NOW)
    storage.turns.save_part(first)
    reply, claim = reply.claim(reply.parts[1], NOW)
    storage.turns.save_part(claim)

    _, last = reply.outcome(reply.parts[1].sent("wamid.b", NOW + minutes(1)), NOW + minutes(1))

    assert last.turn_done is not None
    assert storage.turns.save_part(last)
    assert storage.peek.turn(turn.turn_id) == last.turn_done
    assert storage.turns.next_work(_scope(turn.conversation_id)) is None


def test_an_outcome_that_lost_to_another_worker_changes_neither_part_nor_turn(storage: Storage) -> None:
    route = _seed(storage.uow)
    turn, [part] = _replying(storage, route, "hi")
    reply = Reply(turn, (part,), frozenset({part.message_id}))
    _, sent = reply.outcome(part.sent("wamid.a", NOW), NOW)
    _, unknown = reply.outcome(part.undeliverable(None, "delivery_outcome_unknown", NOW), NOW)
    assert storage.turns.save_part(sent)

    assert storage.turns.save_part(unknown) is False

    assert storage.peek.message(part.message_id).status is S.SENT


def test_a_finished_turn_is_saved_from_replying_only(storage: Storage) -> None:
    route = _seed(storage.uow)
    turn, _ = _replying(storage, route)

    assert storage.turns.save_turn(turn.finish(NOW), before=TurnStatus.REPLYING)
    assert not storage.turns.save_turn(turn.finish(NOW + minutes(1)), before=TurnStatus.REPLYING)

    assert storage.peek.turn(turn.turn_id).updated_at == NOW


# --- delivery reports ----------------------------------------------------------------------------


def _report(status: MessageStatus, *, at: datetime = REPORTED_AT, **error: str) -> DeliveryReport:
    return DeliveryReport("pn-1", "wamid.out", status, at, **error)


def test_our_sent_message_is_found_by_its_platform_id_on_its_channel(storage: Storage) -> None:
    route = _seed(storage.uow)
    part = _sent_part(storage, route)

    assert storage.messages.outbound("pn-1", "wamid.out") == part
    assert storage.messages.outbound("pn-2", "wamid.out") is None
    assert storage.messages.outbound("pn-1", "wamid.never-sent") is None
    assert storage.messages.outbound("pn-1", "wamid.in") is None  # the customer's message, not ours


def test_a_report_is_saved_as_decided(storage: Storage) -> None:
    route = _seed(storage.uow)
    part = _sent_part(storage, route)
    failed = part.report(_report(S.FAILED, error_code="131026", error_reason="Receiver incapable"), REPORTED_AT)
    assert failed is not None

    assert storage.messages.save_report(part, failed)

    assert storage.messages.outbound("pn-1", "wamid.out") == failed


def test_a_report_decided_on_a_message_that_changed_meanwhile_is_not_saved(storage: Storage) -> None:
    route = _seed(storage.uow)
    part = _sent_part(storage, route)
    read = part.report(_report(S.READ), REPORTED_AT)
    delivered = part.report(_report(S.DELIVERED), REPORTED_AT)
    assert read is not None and delivered is not None
    assert storage.messages.save_report(part, read)

    assert storage.messages.save_report(part, delivered) is False

    assert storage.peek.message(part.message_id).status is S.READ


def test_a_note_added_meanwhile_also_makes_a_report_decide_again(storage: Storage) -> None:
    route = _seed(storage.uow)
    part = _sent_part(storage, route)
    delivered = part.report(_report(S.DELIVERED), REPORTED_AT)
    assert delivered is not None and storage.messages.save_report(part, delivered)
    noted = delivered.report(_report(S.FAILED, error_code="131000"), REPORTED_AT)
    read = delivered.report(_report(S.READ), REPORTED_AT)  # decided without the note
    assert noted is not None and read is not None and noted.status is S.DELIVERED
    assert storage.messages.save_report(delivered, noted)

    assert storage.messages.save_report(delivered, read) is False
    read_again = noted.report(_report(S.READ), REPORTED_AT)
    assert read_again is not None and storage.messages.save_report(noted, read_again)

    stored = storage.peek.message(part.message_id)
    assert (stored.status, stored.failure_code) == (S.READ, "131000")


# --- stalled work --------------------------------------------------------------------------------


def _stalled_setup(storage: Storage) -> dict[str, int]:
    """Stalled work on two channels, oldest first: dan (pn-2, received), bob (pn-1, open turn),
    ann (pn-1, received); fresh work (cy) and finished work (eve) that is not stalled."""
    route = _seed(storage.uow, "user-1", "pn-1")
    other = _seed(storage.uow, "user-1", "pn-2")
    _top_up(storage.uow, 10)
    eve = _record(storage, route, "wamid.eve", customer_id="eve", now=NOW - minutes(30))
    finished = _start(storage, route, _scope(eve.conversation_id), now=NOW - minutes(30))
    assert storage.turns.fail(finished.fail("ai_failed: gone", NOW - minutes(30)))
    dan = _record(storage, other, "wamid.dan", customer_id="dan", now=NOW - minutes(20))
    bob = _record(storage, route, "wamid.bob", customer_id="bob", now=NOW - minutes(10))
    _start(storage, route, _scope(bob.conversation_id), now=NOW - minutes(10))
    ann = _record(storage, route, "wamid.ann", customer_id="ann", now=NOW - minutes(5))
    _record(storage, route, "wamid.cy", customer_id="cy", now=NOW + minutes(10))
    return {"dan": dan.conversation_id, "bob": bob.conversation_id, "ann": ann.conversation_id}


def test_stalled_conversations_are_listed_oldest_first(storage: Storage) -> None:
    conversations = _stalled_setup(storage)

    stalled = storage.turns.stalled_scopes(OrderingScope.CONVERSATION, NOW, limit=10)
    oldest = storage.turns.stalled_scopes(OrderingScope.CONVERSATION, NOW, limit=1)
    none_older = storage.turns.stalled_scopes(OrderingScope.CONVERSATION, NOW - minutes(20), limit=10)

    assert stalled == [_scope(conversations[name]) for name in ("dan", "bob", "ann")]
    assert oldest == [_scope(conversations["dan"])]
    assert none_older == []  # `older_than` is exclusive, and a failed turn is not stalled


def test_stalled_channels_are_listed_oldest_first(storage: Storage) -> None:
    _stalled_setup(storage)

    stalled = storage.turns.stalled_scopes(OrderingScope.PHONE_NUMBER, NOW, limit=10)
    oldest = storage.turns.stalled_scopes(OrderingScope.PHONE_NUMBER, NOW, limit=1)
    older = storage.turns.stalled_scopes(OrderingScope.PHONE_NUMBER, NOW - minutes(7), limit=10)

    assert stalled == [ScopeKey(OrderingScope.PHONE_NUMBER, "pn-2"), CHANNEL]
    assert oldest == [ScopeKey(OrderingScope.PHONE_NUMBER, "pn-2")]
    assert older == [ScopeKey(OrderingScope.PHONE_NUMBER, "pn-2"), CHANNEL]


# --- listing -------------------------------------------------------------------------------------


def test_listing_pages_newest_first_with_a_keyset_cursor(storage: Storage) -> None:
    route = _seed(storage.uow)
    ids = [_record(storage, route, f"wamid.{n}").message_id for n in range(5)]

    first, cursor = _list(storage.uow, "user-1", limit=2)
    second, cursor_2 = _list(storage.uow, "user-1", limit=2, cursor=cursor)
    last, cursor_3 = _list(storage.uow, "user-1", limit=2, cursor=cursor_2)

    assert [first, second, last] == [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]
    assert (cursor, cursor_2, cursor_3) == (ids[3], ids[1], None)


def test_a_full_last_page_has_no_next_cursor(storage: Storage) -> None:
    route = _seed(storage.uow)
    for n in range(2):
        _record(storage, route, f"wamid.{n}")

    assert _list(storage.uow, "user-1", limit=2)[1] is None
    assert _list(storage.uow, "user-2") == ([], None)


def test_listing_never_shows_another_tenants_messages(storage: Storage) -> None:
    route = _seed(storage.uow, "user-1", "pn-1")
    other = _seed(storage.uow, "user-2", "pn-9")
    mine = _record(storage, route, "wamid.1", customer_id="shared-customer")
    theirs = _record(storage, other, "wamid.2", customer_id="shared-customer")

    assert _list(storage.uow, "user-1")[0] == [mine.message_id]
    assert _list(storage.uow, "user-1", phone_number_id="pn-9")[0] == []
    assert _list(storage.uow, "user-1", conversation_id=theirs.conversation_id)[0] == []
    assert _list(storage.uow, "user-1", customer_id="shared-customer")[0] == [mine.message_id]
    assert _list(storage.uow, "user-2")[0] == [theirs.message_id]


def test_listing_filters_by_channel_conversation_customer_and_status(storage: Storage) -> None:
    route = _seed(storage.uow, "user-1", "pn-1")
    second_channel = _seed(storage.uow, "user-1", "pn-2")
    ann = _record(storage, route, "wamid.1", customer_id="ann")
    bob = _record(storage, route, "wamid.2", customer_id="bob")
    skipped = _record(storage, route, "wamid.3", customer_id="bob", text=None, skip_reason="sticker")
    elsewhere = _record(storage, second_channel, "wamid.4", customer_id="ann")

    assert _list(storage.uow, "user-1", phone_number_id="pn-2")[0] == [elsewhere.message_id]
    assert _list(storage.uow, "user-1", conversation_id=bob.conversation_id)[0] == [skipped.message_id, bob.message_id]
    assert _list(storage.uow, "user-1", customer_id="ann")[0] == [elsewhere.message_id, ann.message_id]
    assert _list(storage.uow, "user-1", status=MessageStatus.SKIPPED)[0] == [skipped.message_id]
    assert _list(storage.uow, "user-1", customer_id="ann", phone_number_id="pn-1")[0] == [ann.message_id]
    assert _list(storage.uow, "user-1", customer_id="nobody")[0] == []


def test_listing_since_is_inclusive_and_until_exclusive(storage: Storage) -> None:
    route = _seed(storage.uow)
    early = _record(storage, route, "wamid.1", now=NOW)
    on_the_mark = _record(storage, route, "wamid.2", now=NOW + minutes(1))
    late = _record(storage, route, "wamid.3", now=NOW + minutes(2))

    assert _list(storage.uow, "user-1", since=NOW + minutes(1))[0] == [late.message_id, on_the_mark.message_id]
    assert _list(storage.uow, "user-1", until=NOW + minutes(1))[0] == [early.message_id]
    assert _list(storage.uow, "user-1", since=NOW + minutes(1), until=NOW + minutes(2))[0] == [on_the_mark.message_id]


def test_listing_in_sequence_order_pages_through_a_conversation(storage: Storage) -> None:
    route = _seed(storage.uow)
    recorded = [_record(storage, route, f"wamid.{n}") for n in range(3)]
    _record(storage, route, "wamid.other", customer_id="bob")
    conversation_id = recorded[0].conversation_id

    first, cursor = _list(storage.uow, "user-1", conversation_id=conversation_id, order="sequence", limit=2)
    rest, end = _list(storage.uow, "user-1", conversation_id=conversation_id, order="sequence", limit=2, cursor=cursor)

    assert first + rest == [r.message_id for r in recorded]
    assert (cursor, end) == (2, None)


def test_sequence_order_needs_a_conversation(storage: Storage) -> None:
    _seed(storage.uow)

    with pytest.raises(ValidationFailed) as raised:
        _list(storage.uow, "user-1", order="sequence")
    assert raised.value.field == "order"


def test_an_unknown_order_is_refused(storage: Storage) -> None:
    _seed(storage.uow)

    with pytest.raises(ValidationFailed) as raised:
        _list(storage.uow, "user-1", order="oldest")
    assert raised.value.field == "order"


# --- the unit of work ----------------------------------------------------------------------------


Everything = tuple[User | None, list[Channel], list[Agent], int, list[LedgerEntry]]


def _everything_of_user_1(uow_factory: UowFactory) -> Everything:
    with uow_factory() as uow:
        return (
            uow.users.get("user-1"),
            uow.channels.list("user-1"),
            uow.agents.list("user-1"),
            uow.credits.get("user-1").balance,
            uow.credits.ledger("user-1", limit=10),
        )


def _do_a_bit_of_everything(uow: UnitOfWork) -> None:
    uow.users.add(a_user("user-1"))
    uow.channels.add(a_channel("user-1", "pn-1"))
    uow.agents.add(an_agent("user-1", "pn-1"))
    uow.credits.record(CreditMovement.top_up("user-1", 10, None), NOW, idempotency_key="order-1")


def test_work_left_uncommitted_is_rolled_back(uow_factory: UowFactory) -> None:
    with uow_factory() as uow:
        _do_a_bit_of_everything(uow)

    assert _everything_of_user_1(uow_factory) == (None, [], [], 0, [])


def test_an_exception_rolls_the_work_back(uow_factory: UowFactory) -> None:
    with pytest.raises(RuntimeError), uow_factory() as uow:
        _do_a_bit_of_everything(uow)
        raise RuntimeError("use case failed")

    assert _everything_of_user_1(uow_factory) == (None, [], [], 0, [])


def test_rolled_back_work_leaves_no_trace_for_the_next_attempt(uow_factory: UowFactory) -> None:
    with uow_factory() as uow:
        _do_a_bit_of_everything(uow)

    with uow_factory() as uow:
        _do_a_bit_of_everything(uow)
        uow.commit()

    users, channels, agents, balance, ledger = _everything_of_user_1(uow_factory)
    assert (users, balance, len(channels), len(agents), len(ledger)) == (a_user("user-1"), 10, 1, 1, 1)


def test_work_after_a_commit_is_rolled_back_on_its_own(uow_factory: UowFactory) -> None:
    with uow_factory() as uow:
        uow.users.add(a_user("user-1"))
        uow.commit()
        uow.users.add(a_user("user-2"))

    with uow_factory() as uow:
        assert uow.users.get("user-1") == a_user("user-1")
        assert uow.users.get("user-2") is None

"""The UnitOfWork contract: one set of behaviours, run against the in-memory and the PostgreSQL adapter.

The use-case tests run on the in-memory adapter; these tests are what entitles them to: every
behaviour the use cases rely on must be the same on both. A test here that fails for one adapter
only means the fake (or the real one) has drifted from the port.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from attrs import evolve

from adapters.memory.store import InMemoryStore, InMemoryUnitOfWork
from adapters.postgres.pool import open_pool
from adapters.postgres.unit_of_work import PostgresUnitOfWork
from application.ports.repositories import MessageQuery, UnitOfWork
from domain.credits import LedgerEntry, LedgerKind
from domain.errors import Conflict, NotFound, ValidationFailed
from domain.messages import (
    DeliveryReport,
    Direction,
    Message,
    MessageStatus,
    OrderingScope,
    RecordedInbound,
    ScopeKey,
)
from domain.tenancy import Agent, Channel, Route, User
from domain.turns import AIReply, Turn, TurnStatus
from tests.support.postgres import NOW, a_channel, a_user, an_agent, an_inbound, minutes

UowFactory = Callable[[], UnitOfWork]

CHANNEL = ScopeKey(OrderingScope.PHONE_NUMBER, "pn-1")
REPORTED_AT = NOW + minutes(2)
REPLY = AIReply(text="part one part two", response_id="resp_1", input_tokens=40, output_tokens=9)


@pytest.fixture(params=["memory", "postgres"])
def uow_factory(request: pytest.FixtureRequest) -> Iterator[UowFactory]:
    if request.param == "memory":
        store = InMemoryStore()
        yield lambda: InMemoryUnitOfWork(store)
        return
    pool = open_pool(request.getfixturevalue("clean_database"), size=4, timeout_s=10)
    try:
        yield lambda: PostgresUnitOfWork(pool)
    finally:
        pool.close()


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
    uow_factory: UowFactory, route: Route, platform_message_id: str, *, now: datetime = NOW, **inbound: Any
) -> RecordedInbound:
    with uow_factory() as uow:
        recorded = uow.messages.record_inbound(route, an_inbound(route, platform_message_id, **inbound), now)
        uow.commit()
    return recorded


def _stored(uow_factory: UowFactory, message_id: int) -> Message:
    with uow_factory() as uow:
        [message] = uow.messages.get_many([message_id])
    return message


def _conversation_scope(conversation_id: int) -> ScopeKey:
    return ScopeKey(OrderingScope.CONVERSATION, str(conversation_id))


def _start_turn(
    uow_factory: UowFactory,
    route: Route,
    recorded: list[RecordedInbound],
    *,
    credits_reserved: int = 1,
    now: datetime = NOW,
) -> Turn:
    with uow_factory() as uow:
        turn = uow.turns.start(
            user_id=route.user_id,
            conversation_id=recorded[0].conversation_id,
            phone_number_id=route.channel.phone_number_id,
            inbound_ids=[r.message_id for r in recorded],
            credits_reserved=credits_reserved,
            now=now,
        )
        uow.commit()
    return turn


def _reply(uow_factory: UowFactory, route: Route, texts: list[str]) -> tuple[Turn, list[Message]]:
    """An inbound message answered by a turn whose reply is stored as `texts` (pending, not sent)."""
    recorded = _record(uow_factory, route, "wamid.in")
    turn = _start_turn(uow_factory, route, [recorded])
    with uow_factory() as uow:
        assert uow.turns.record_reply(turn.turn_id, REPLY, NOW + minutes(1))
        conversation = uow.conversations.get(recorded.conversation_id)
        assert conversation is not None
        outbound = uow.messages.add_outbound(conversation, turn.turn_id, texts, REPLY, NOW + minutes(1))
        uow.commit()
    return turn, outbound


def _sent_reply(uow_factory: UowFactory, route: Route, platform_message_id: str = "wamid.out") -> Message:
    _, [message] = _reply(uow_factory, route, ["hi"])
    with uow_factory() as uow:
        assert uow.messages.start_sending(message.message_id, NOW + minutes(1))
        uow.messages.record_sent(message.message_id, platform_message_id, NOW + minutes(1))
        uow.commit()
    return _stored(uow_factory, message.message_id)


def _report(
    uow_factory: UowFactory,
    status: MessageStatus,
    at: datetime = REPORTED_AT,
    *,
    platform_message_id: str = "wamid.out",
    **error: str,
) -> bool:
    with uow_factory() as uow:
        applied = uow.messages.apply_delivery_report(
            DeliveryReport("pn-1", platform_message_id, status, at, **error), at
        )
        uow.commit()
    return applied


def _list(uow_factory: UowFactory, user_id: str, **query: Any) -> tuple[list[int], int | None]:
    with uow_factory() as uow:
        page = uow.messages.list(user_id, MessageQuery(**query))
    return [m.message_id for m in page.items], page.next_cursor


def _top_up(uow_factory: UowFactory, amount: int, user_id: str = "user-1") -> None:
    with uow_factory() as uow:
        uow.credits.top_up(user_id, amount, "test", None, NOW)
        uow.commit()


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
        first = uow.credits.top_up("user-1", 10, "welcome", None, NOW)
        second = uow.credits.top_up("user-1", 5, None, None, NOW + minutes(1))
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
    with uow_factory() as uow:
        first = uow.credits.top_up("user-1", 10, None, "order-42", NOW)
        uow.commit()

    with uow_factory() as uow:
        again = uow.credits.top_up("user-1", 10, None, "order-42", NOW + minutes(1))
        uow.commit()

    assert again == first
    with uow_factory() as uow:
        assert uow.credits.get("user-1").balance == 10
        assert uow.credits.ledger("user-1", limit=10) == [first]


def test_an_idempotency_key_belongs_to_one_user(uow_factory: UowFactory) -> None:
    _seed(uow_factory, "user-1", "pn-1")
    _seed(uow_factory, "user-2", "pn-2")
    with uow_factory() as uow:
        mine = uow.credits.top_up("user-1", 10, None, "order-1", NOW)
        theirs = uow.credits.top_up("user-2", 7, None, "order-1", NOW)
        uow.commit()

    assert mine.entry_id != theirs.entry_id
    with uow_factory() as uow:
        assert (uow.credits.get("user-1").balance, uow.credits.get("user-2").balance) == (10, 7)


def test_reserve_holds_only_what_is_available_and_never_goes_below_zero(uow_factory: UowFactory) -> None:
    _seed(uow_factory)
    _top_up(uow_factory, 5)

    with uow_factory() as uow:
        assert uow.credits.reserve("user-1", 3, NOW + minutes(1)) is True
        assert uow.credits.reserve("user-1", 3, NOW + minutes(1)) is False
        assert uow.credits.reserve("user-1", 2, NOW + minutes(1)) is True
        assert uow.credits.reserve("user-1", 1, NOW + minutes(1)) is False
        uow.commit()

    with uow_factory() as uow:
        credits = uow.credits.get("user-1")
    assert (credits.balance, credits.reserved, credits.available, credits.updated_at) == (5, 5, 0, NOW + minutes(1))


def test_reserve_without_an_account_holds_nothing(uow_factory: UowFactory) -> None:
    _seed(uow_factory)

    with uow_factory() as uow:
        assert uow.credits.reserve("user-1", 1, NOW) is False
        uow.commit()

    with uow_factory() as uow:
        credits = uow.credits.get("user-1")
    assert (credits.balance, credits.reserved) == (0, 0)


def test_release_gives_a_hold_back(uow_factory: UowFactory) -> None:
    _seed(uow_factory)
    _top_up(uow_factory, 5)

    with uow_factory() as uow:
        assert uow.credits.reserve("user-1", 4, NOW)
        uow.credits.release("user-1", 3, NOW + minutes(1))
        uow.commit()

    with uow_factory() as uow:
        credits = uow.credits.get("user-1")
        assert uow.credits.ledger("user-1", limit=10)[0].kind is LedgerKind.TOP_UP  # a release writes no entry
    assert (credits.balance, credits.reserved, credits.available) == (5, 1, 4)


def test_releasing_more_than_is_held_is_a_conflict_and_changes_nothing(uow_factory: UowFactory) -> None:
    _seed(uow_factory)
    _top_up(uow_factory, 5)
    with uow_factory() as uow:
        uow.credits.reserve("user-1", 1, NOW)
        uow.commit()

    with pytest.raises(Conflict), uow_factory() as uow:
        uow.credits.release("user-1", 2, NOW)

    with uow_factory() as uow:
        credits = uow.credits.get("user-1")
    assert (credits.balance, credits.reserved) == (5, 1)


def test_charge_turns_a_hold_into_one_ai_turn_entry(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    turn = _start_turn(uow_factory, route, [_record(uow_factory, route, "wamid.1")], credits_reserved=2)
    _top_up(uow_factory, 5)

    with uow_factory() as uow:
        assert uow.credits.reserve("user-1", 2, NOW)
        entry = uow.credits.charge("user-1", 2, turn.turn_id, NOW + minutes(1))
        uow.commit()

    assert (entry.kind, entry.amount, entry.balance_after, entry.reason, entry.turn_id, entry.created_at) == (
        LedgerKind.CHARGE,
        -2,
        3,
        "ai_turn",
        turn.turn_id,
        NOW + minutes(1),
    )
    with uow_factory() as uow:
        credits = uow.credits.get("user-1")
    assert (credits.balance, credits.reserved) == (3, 0)


def test_a_turn_charged_twice_is_charged_once(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    turn = _start_turn(uow_factory, route, [_record(uow_factory, route, "wamid.1")])
    _top_up(uow_factory, 5)
    with uow_factory() as uow:
        uow.credits.reserve("user-1", 2, NOW)
        first = uow.credits.charge("user-1", 1, turn.turn_id, NOW)
        uow.commit()

    with uow_factory() as uow:
        again = uow.credits.charge("user-1", 1, turn.turn_id, NOW + minutes(1))
        uow.commit()

    assert again == first
    with uow_factory() as uow:
        credits = uow.credits.get("user-1")
        charges = [e for e in uow.credits.ledger("user-1", limit=10) if e.kind is LedgerKind.CHARGE]
    assert (credits.balance, credits.reserved) == (4, 1)
    assert charges == [first]


def test_charging_more_than_is_held_is_a_conflict_and_changes_nothing(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    turn = _start_turn(uow_factory, route, [_record(uow_factory, route, "wamid.1")])
    _top_up(uow_factory, 5)

    with pytest.raises(Conflict), uow_factory() as uow:
        uow.credits.charge("user-1", 1, turn.turn_id, NOW)

    with uow_factory() as uow:
        credits = uow.credits.get("user-1")
        assert len(uow.credits.ledger("user-1", limit=10)) == 1
    assert (credits.balance, credits.reserved) == (5, 0)


def test_charging_a_user_without_an_account_is_a_conflict(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    turn = _start_turn(uow_factory, route, [_record(uow_factory, route, "wamid.1")])

    with pytest.raises(Conflict), uow_factory() as uow:
        uow.credits.charge("user-1", 1, turn.turn_id, NOW)

    with uow_factory() as uow:
        assert uow.credits.ledger("user-1", limit=10) == []


def test_the_ledger_lists_top_ups_and_charges_newest_first_up_to_the_limit(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    _seed(uow_factory, "user-2", "pn-2")
    turn = _start_turn(uow_factory, route, [_record(uow_factory, route, "wamid.1")])
    with uow_factory() as uow:
        welcome = uow.credits.top_up("user-1", 10, "welcome", None, NOW)
        uow.credits.top_up("user-2", 3, "theirs", None, NOW)
        uow.credits.reserve("user-1", 2, NOW)
        charge = uow.credits.charge("user-1", 2, turn.turn_id, NOW + minutes(1))
        refill = uow.credits.top_up("user-1", 5, "refill", None, NOW + minutes(2))
        uow.commit()

    with uow_factory() as uow:
        assert uow.credits.ledger("user-1", limit=10) == [refill, charge, welcome]
        assert uow.credits.ledger("user-1", limit=2) == [refill, charge]
    assert [e.balance_after for e in (welcome, charge, refill)] == [10, 8, 13]


# --- recording inbound messages ------------------------------------------------------------------


def test_the_first_message_opens_a_conversation_and_the_next_ones_continue_it_in_sequence(
    uow_factory: UowFactory,
) -> None:
    route = _seed(uow_factory)
    first = _record(uow_factory, route, "wamid.1", sent_at=NOW - minutes(3))
    second = _record(uow_factory, route, "wamid.2", sent_at=NOW - minutes(1), now=NOW + minutes(1))
    third = _record(uow_factory, route, "wamid.3", customer_name=None, sent_at=NOW - minutes(2), now=NOW + minutes(2))

    assert [r.sequence_no for r in (first, second, third)] == [1, 2, 3]
    assert first.conversation_id == second.conversation_id == third.conversation_id
    assert not any(r.duplicate for r in (first, second, third))
    with uow_factory() as uow:
        conversation = uow.conversations.get(first.conversation_id)
    assert conversation is not None
    assert (conversation.user_id, conversation.agent_id, conversation.phone_number_id) == (
        "user-1",
        "agent-pn-1",
        "pn-1",
    )
    assert (conversation.customer_id, conversation.customer_name, conversation.is_active) == ("customer-1", "Ann", True)
    assert conversation.last_customer_message_at == NOW - minutes(1)  # the latest sent_at, not the last received
    assert (conversation.created_at, conversation.last_message_at) == (NOW, NOW + minutes(2))
    assert (conversation.openai_conversation_id, conversation.openai_last_item_id) == (None, None)


def test_a_later_name_replaces_the_customer_name_and_a_missing_one_keeps_it(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    first = _record(uow_factory, route, "wamid.1", customer_name=None)
    _record(uow_factory, route, "wamid.2", customer_name="Ann")
    _record(uow_factory, route, "wamid.3", customer_name="Ann B.")
    _record(uow_factory, route, "wamid.4", customer_name=None)

    with uow_factory() as uow:
        conversation = uow.conversations.get(first.conversation_id)
    assert conversation is not None and conversation.customer_name == "Ann B."


def test_last_message_at_never_moves_back(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    first = _record(uow_factory, route, "wamid.1", now=NOW + minutes(5))
    _record(uow_factory, route, "wamid.2", now=NOW)

    with uow_factory() as uow:
        conversation = uow.conversations.get(first.conversation_id)
    assert conversation is not None and conversation.last_message_at == NOW + minutes(5)


def test_each_customer_gets_a_conversation_of_their_own(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    ann = _record(uow_factory, route, "wamid.1", customer_id="ann")
    bob = _record(uow_factory, route, "wamid.2", customer_id="bob")

    assert ann.conversation_id != bob.conversation_id
    assert (ann.sequence_no, bob.sequence_no) == (1, 1)


def test_an_answerable_message_is_stored_received(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    recorded = _record(uow_factory, route, "wamid.1", sent_at=NOW - minutes(1))

    message = _stored(uow_factory, recorded.message_id)
    assert message == Message(
        message_id=recorded.message_id,
        user_id="user-1",
        conversation_id=recorded.conversation_id,
        phone_number_id="pn-1",
        direction=Direction.INBOUND,
        sequence_no=1,
        platform_message_id="wamid.1",
        content_type="text",
        text="hello",
        status=MessageStatus.RECEIVED,
        failure_reason=None,
        failure_code=None,
        turn_id=None,
        input_tokens=None,
        output_tokens=None,
        sent_at=NOW - minutes(1),
        created_at=NOW,
        updated_at=NOW,
    )


def test_a_message_that_cannot_be_answered_is_stored_skipped_with_its_reason(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    recorded = _record(uow_factory, route, "wamid.img", text=None, skip_reason="image messages are not answered")

    message = _stored(uow_factory, recorded.message_id)
    assert (message.status, message.failure_reason, message.content_type, message.text) == (
        MessageStatus.SKIPPED,
        "image messages are not answered",
        "image",
        None,
    )
    with uow_factory() as uow:
        assert not uow.messages.has_pending(_conversation_scope(recorded.conversation_id))


def test_a_redelivered_message_is_a_duplicate_and_changes_nothing(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    first = _record(uow_factory, route, "wamid.1")
    with uow_factory() as uow:
        conversation_before = uow.conversations.get(first.conversation_id)

    again = _record(
        uow_factory, route, "wamid.1", customer_name="Someone Else", sent_at=NOW + minutes(9), now=NOW + minutes(9)
    )

    assert again == RecordedInbound(first.message_id, first.conversation_id, first.sequence_no, duplicate=True)
    with uow_factory() as uow:
        assert uow.conversations.get(first.conversation_id) == conversation_before
    assert _list(uow_factory, "user-1")[0] == [first.message_id]
    assert _record(uow_factory, route, "wamid.2").sequence_no == 2  # a redelivery uses up no sequence number


def test_the_same_platform_id_on_another_channel_is_another_message(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory, "user-1", "pn-1")
    other = _seed(uow_factory, "user-1", "pn-2")
    first = _record(uow_factory, route, "id-1")

    elsewhere = _record(uow_factory, other, "id-1")

    assert not elsewhere.duplicate
    assert elsewhere.message_id != first.message_id
    assert elsewhere.conversation_id != first.conversation_id


def test_recording_needs_a_channel_with_an_agent(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory, with_agent=False)

    with pytest.raises(ValueError), uow_factory() as uow:
        uow.messages.record_inbound(route, an_inbound(route, "wamid.1"), NOW)


def test_a_conversation_keeps_its_openai_ids(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    recorded = _record(uow_factory, route, "wamid.1")

    with uow_factory() as uow:
        uow.conversations.set_openai_conversation(recorded.conversation_id, "conv_abc")
        uow.conversations.set_openai_last_item(recorded.conversation_id, "msg_1")
        uow.commit()

    with uow_factory() as uow:
        conversation = uow.conversations.get(recorded.conversation_id)
        assert uow.conversations.get(recorded.conversation_id + 1000) is None
    assert conversation is not None
    assert (conversation.openai_conversation_id, conversation.openai_last_item_id) == ("conv_abc", "msg_1")


# --- pending work --------------------------------------------------------------------------------


def test_a_conversation_batch_is_its_received_messages_in_sequence_order(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    first = _record(uow_factory, route, "wamid.1")
    _record(uow_factory, route, "wamid.skip", text=None, skip_reason="sticker")
    third = _record(uow_factory, route, "wamid.3")
    _record(uow_factory, route, "wamid.other", customer_id="bob")

    with uow_factory() as uow:
        batch = uow.messages.pending_batch(_conversation_scope(first.conversation_id))
        assert uow.messages.has_pending(_conversation_scope(first.conversation_id))
    assert [(m.message_id, m.sequence_no) for m in batch] == [(first.message_id, 1), (third.message_id, 3)]


def test_a_channel_batch_stops_at_the_first_message_of_another_conversation(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    ann_1 = _record(uow_factory, route, "wamid.1", customer_id="ann")
    ann_2 = _record(uow_factory, route, "wamid.2", customer_id="ann")
    bob_1 = _record(uow_factory, route, "wamid.3", customer_id="bob")
    ann_3 = _record(uow_factory, route, "wamid.4", customer_id="ann")

    batches: list[list[int]] = []
    with uow_factory() as uow:
        while uow.messages.has_pending(CHANNEL):
            batch = [m.message_id for m in uow.messages.pending_batch(CHANNEL)]
            batches.append(batch)
            uow.messages.mark_inbound(batch, MessageStatus.ANSWERED, NOW)
        assert uow.messages.pending_batch(CHANNEL) == []
    assert batches == [[ann_1.message_id, ann_2.message_id], [bob_1.message_id], [ann_3.message_id]]


def test_a_channel_batch_covers_only_its_own_channel(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory, "user-1", "pn-1")
    other = _seed(uow_factory, "user-1", "pn-2")
    elsewhere = _record(uow_factory, other, "wamid.1")
    here = _record(uow_factory, route, "wamid.2")

    with uow_factory() as uow:
        assert [m.message_id for m in uow.messages.pending_batch(CHANNEL)] == [here.message_id]
        other_batch = uow.messages.pending_batch(ScopeKey(OrderingScope.PHONE_NUMBER, "pn-2"))
        assert [m.message_id for m in other_batch] == [elsewhere.message_id]


def test_a_scope_with_nothing_received_has_an_empty_batch(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    skipped = _record(uow_factory, route, "wamid.1", text=None, skip_reason="sticker")

    with uow_factory() as uow:
        assert uow.messages.pending_batch(CHANNEL) == []
        assert not uow.messages.has_pending(CHANNEL)
        assert uow.messages.pending_batch(_conversation_scope(skipped.conversation_id)) == []
        assert not uow.messages.has_pending(_conversation_scope(skipped.conversation_id))


def test_mark_inbound_sets_status_and_failure_of_inbound_messages_only(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    turn, [outbound] = _reply(uow_factory, route, ["hi"])
    [answered_id] = turn.inbound_ids
    second = _record(uow_factory, route, "wamid.2")

    with uow_factory() as uow:
        uow.messages.mark_inbound(
            [second.message_id, outbound.message_id],
            MessageStatus.FAILED,
            NOW + minutes(3),
            failure_reason="no credits",
            failure_code="insufficient_credits",
        )
        uow.commit()

    failed = _stored(uow_factory, second.message_id)
    assert (failed.status, failed.failure_reason, failed.failure_code, failed.updated_at) == (
        MessageStatus.FAILED,
        "no credits",
        "insufficient_credits",
        NOW + minutes(3),
    )
    assert _stored(uow_factory, outbound.message_id) == outbound
    assert _stored(uow_factory, answered_id).status is MessageStatus.PROCESSING


def test_get_many_gives_messages_in_conversation_and_sequence_order(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    ann_1 = _record(uow_factory, route, "wamid.1", customer_id="ann")
    bob_1 = _record(uow_factory, route, "wamid.2", customer_id="bob")
    ann_2 = _record(uow_factory, route, "wamid.3", customer_id="ann")

    with uow_factory() as uow:
        messages = uow.messages.get_many([bob_1.message_id, ann_2.message_id, ann_1.message_id, 999_999])
    assert [m.message_id for m in messages] == [ann_1.message_id, ann_2.message_id, bob_1.message_id]


# --- turns ---------------------------------------------------------------------------------------


def test_starting_a_turn_marks_its_messages_processing(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    first = _record(uow_factory, route, "wamid.1")
    second = _record(uow_factory, route, "wamid.2")

    turn = _start_turn(uow_factory, route, [first, second], credits_reserved=2, now=NOW + minutes(1))

    assert (turn.user_id, turn.conversation_id, turn.phone_number_id) == ("user-1", first.conversation_id, "pn-1")
    assert (turn.status, turn.inbound_ids, turn.credits_reserved, turn.attempts) == (
        TurnStatus.AWAITING_AI,
        (first.message_id, second.message_id),
        2,
        0,
    )
    assert (turn.response_id, turn.failure_reason, turn.created_at, turn.updated_at) == (
        None,
        None,
        NOW + minutes(1),
        NOW + minutes(1),
    )
    for recorded in (first, second):
        message = _stored(uow_factory, recorded.message_id)
        assert (message.status, message.turn_id, message.updated_at) == (
            MessageStatus.PROCESSING,
            turn.turn_id,
            NOW + minutes(1),
        )
    with uow_factory() as uow:
        assert not uow.messages.has_pending(_conversation_scope(first.conversation_id))
        assert uow.messages.pending_batch(CHANNEL) == []


def test_the_open_turn_is_the_oldest_unfinished_turn_of_the_scope(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    ann = _record(uow_factory, route, "wamid.1", customer_id="ann")
    bob = _record(uow_factory, route, "wamid.2", customer_id="bob")
    cy = _record(uow_factory, route, "wamid.3", customer_id="cy")
    done = _start_turn(uow_factory, route, [ann])
    bobs = _start_turn(uow_factory, route, [bob])
    cys = _start_turn(uow_factory, route, [cy])
    with uow_factory() as uow:
        uow.turns.record_reply(done.turn_id, REPLY, NOW)
        uow.turns.finish(done.turn_id, NOW)
        uow.commit()

    with uow_factory() as uow:
        assert uow.turns.open_turn(CHANNEL) == bobs
        assert uow.turns.open_turn(_conversation_scope(cy.conversation_id)) == cys
        assert uow.turns.open_turn(_conversation_scope(ann.conversation_id)) is None
        assert uow.turns.open_turn(ScopeKey(OrderingScope.PHONE_NUMBER, "pn-other")) is None


def test_note_attempt_counts_the_attempts_of_a_turn(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    turn = _start_turn(uow_factory, route, [_record(uow_factory, route, "wamid.1")])

    with uow_factory() as uow:
        uow.turns.note_attempt(turn.turn_id, NOW + minutes(1))
        noted = uow.turns.note_attempt(turn.turn_id, NOW + minutes(2))
        uow.commit()

    assert (noted.attempts, noted.updated_at, noted.status) == (2, NOW + minutes(2), TurnStatus.AWAITING_AI)


def test_note_attempt_on_an_unknown_turn_is_not_found(uow_factory: UowFactory) -> None:
    with pytest.raises(NotFound), uow_factory() as uow:
        uow.turns.note_attempt(424242, NOW)


def test_a_reply_is_recorded_once_and_the_turn_then_cannot_fail(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    turn = _start_turn(uow_factory, route, [_record(uow_factory, route, "wamid.1")])

    with uow_factory() as uow:
        assert uow.turns.record_reply(turn.turn_id, REPLY, NOW + minutes(1)) is True
        assert uow.turns.record_reply(turn.turn_id, REPLY, NOW + minutes(2)) is False
        assert uow.turns.fail(turn.turn_id, "too late", NOW + minutes(2)) is False
        uow.commit()

    with uow_factory() as uow:
        replying = uow.turns.open_turn(CHANNEL)
    assert replying is not None
    assert (replying.status, replying.response_id, replying.failure_reason, replying.updated_at) == (
        TurnStatus.REPLYING,
        "resp_1",
        None,
        NOW + minutes(1),
    )


def test_an_awaiting_turn_fails_once_and_then_takes_no_reply(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    turn = _start_turn(uow_factory, route, [_record(uow_factory, route, "wamid.1")])

    with uow_factory() as uow:
        assert uow.turns.fail(turn.turn_id, "ai_failed: timeout", NOW + minutes(1)) is True
        assert uow.turns.fail(turn.turn_id, "again", NOW + minutes(2)) is False
        assert uow.turns.record_reply(turn.turn_id, REPLY, NOW + minutes(2)) is False
        uow.commit()

    with uow_factory() as uow:
        assert uow.turns.open_turn(CHANNEL) is None
        failed = uow.turns.note_attempt(turn.turn_id, NOW + minutes(3))
    assert (failed.status, failed.failure_reason, failed.response_id) == (
        TurnStatus.FAILED,
        "ai_failed: timeout",
        None,
    )


def test_finish_closes_a_replying_turn(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    turn = _start_turn(uow_factory, route, [_record(uow_factory, route, "wamid.1")])

    with uow_factory() as uow:
        uow.turns.record_reply(turn.turn_id, REPLY, NOW)
        uow.turns.finish(turn.turn_id, NOW + minutes(1))
        uow.commit()

    with uow_factory() as uow:
        assert uow.turns.open_turn(CHANNEL) is None
        done = uow.turns.note_attempt(turn.turn_id, NOW + minutes(2))
    assert done.status is TurnStatus.DONE


def test_finish_leaves_a_turn_that_is_not_replying_alone(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    turn = _start_turn(uow_factory, route, [_record(uow_factory, route, "wamid.1")])

    with uow_factory() as uow:
        uow.turns.finish(turn.turn_id, NOW + minutes(1))
        uow.commit()

    with uow_factory() as uow:
        assert uow.turns.open_turn(CHANNEL) == turn


def _funded_turn(
    uow_factory: UowFactory, route: Route, recorded: list[RecordedInbound], *, credits_reserved: int = 1
) -> Turn | None:
    with uow_factory() as uow:
        turn = uow.turns.start_funded(
            user_id=route.user_id,
            conversation_id=recorded[0].conversation_id,
            phone_number_id=route.channel.phone_number_id,
            inbound_ids=[r.message_id for r in recorded],
            credits_reserved=credits_reserved,
            now=NOW + minutes(1),
        )
        uow.commit()
    return turn


def test_a_funded_turn_holds_its_credits_and_marks_its_messages_processing(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    _top_up(uow_factory, 5)
    first = _record(uow_factory, route, "wamid.1")
    second = _record(uow_factory, route, "wamid.2")

    turn = _funded_turn(uow_factory, route, [first, second], credits_reserved=2)

    assert turn is not None
    assert (turn.status, turn.inbound_ids, turn.credits_reserved, turn.conversation_id) == (
        TurnStatus.AWAITING_AI,
        (first.message_id, second.message_id),
        2,
        first.conversation_id,
    )
    with uow_factory() as uow:
        credits = uow.credits.get("user-1")
        assert uow.turns.open_turn(CHANNEL) == turn
    assert (credits.balance, credits.reserved, credits.updated_at) == (5, 2, NOW + minutes(1))
    assert [(m.status, m.turn_id) for m in (_stored(uow_factory, r.message_id) for r in (first, second))] == [
        (MessageStatus.PROCESSING, turn.turn_id)
    ] * 2


def test_a_turn_the_balance_cannot_fund_is_not_started_and_changes_nothing(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    _top_up(uow_factory, 1)
    held = _record(uow_factory, route, "wamid.1", customer_id="ann")
    assert _funded_turn(uow_factory, route, [held]) is not None
    unfunded = _record(uow_factory, route, "wamid.2", customer_id="bob")

    assert _funded_turn(uow_factory, route, [unfunded]) is None

    with uow_factory() as uow:
        credits = uow.credits.get("user-1")
        assert uow.turns.open_turn(_conversation_scope(unfunded.conversation_id)) is None
        assert [m.message_id for m in uow.messages.pending_batch(_conversation_scope(unfunded.conversation_id))] == [
            unfunded.message_id
        ]
    assert (credits.balance, credits.reserved) == (1, 1)


def test_a_turn_without_a_credits_account_is_not_started(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)

    assert _funded_turn(uow_factory, route, [_record(uow_factory, route, "wamid.1")], credits_reserved=0) is None


def _answer(uow_factory: UowFactory, turn: Turn, texts: list[str], reply: AIReply = REPLY) -> list[Message] | None:
    with uow_factory() as uow:
        conversation = uow.conversations.get(turn.conversation_id)
        assert conversation is not None
        parts = uow.turns.record_answer(turn, conversation, reply, texts, NOW + minutes(2), claim_first=True)
        uow.commit()
    return parts


def test_an_answer_stores_the_parts_answers_the_batch_and_charges_the_turn_at_once(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    _top_up(uow_factory, 5)
    first = _record(uow_factory, route, "wamid.1")
    second = _record(uow_factory, route, "wamid.2")
    turn = _funded_turn(uow_factory, route, [first, second], credits_reserved=2)
    assert turn is not None
    reply = evolve(REPLY, last_item_id="msg_9")

    parts = _answer(uow_factory, turn, ["part one", "part two"], reply)

    assert parts is not None
    assert [(p.direction, p.sequence_no, p.text, p.status, p.turn_id) for p in parts] == [
        (Direction.OUTBOUND, 3, "part one", MessageStatus.SENDING, turn.turn_id),
        (Direction.OUTBOUND, 4, "part two", MessageStatus.PENDING, turn.turn_id),
    ]
    assert [(p.input_tokens, p.output_tokens) for p in parts] == [(40, 9), (None, None)]
    with uow_factory() as uow:
        assert uow.messages.outbound_for_turn(turn.turn_id) == parts
        replying = uow.turns.open_turn(CHANNEL)
        credits = uow.credits.get("user-1")
        [charge, _] = uow.credits.ledger("user-1", limit=10)
        conversation = uow.conversations.get(turn.conversation_id)
    assert replying is not None
    assert (replying.status, replying.response_id) == (TurnStatus.REPLYING, "resp_1")
    assert [_stored(uow_factory, r.message_id).status for r in (first, second)] == [MessageStatus.ANSWERED] * 2
    assert (credits.balance, credits.reserved) == (3, 0)
    assert (charge.kind, charge.amount, charge.balance_after, charge.turn_id) == (
        LedgerKind.CHARGE,
        -2,
        3,
        turn.turn_id,
    )
    assert conversation is not None
    assert (conversation.openai_last_item_id, conversation.last_message_at) == ("msg_9", NOW + minutes(2))


def test_an_answer_to_a_turn_that_moved_on_changes_nothing(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    _top_up(uow_factory, 5)
    turn = _funded_turn(uow_factory, route, [_record(uow_factory, route, "wamid.1")])
    assert turn is not None
    theirs = _answer(uow_factory, turn, ["theirs"])

    assert _answer(uow_factory, turn, ["mine", "too"]) is None

    with uow_factory() as uow:
        assert uow.messages.outbound_for_turn(turn.turn_id) == theirs
        credits = uow.credits.get("user-1")
        charges = [e for e in uow.credits.ledger("user-1", limit=10) if e.kind is LedgerKind.CHARGE]
    assert (credits.balance, credits.reserved, len(charges)) == (4, 0, 1)


def test_an_answer_without_a_last_item_keeps_the_conversations_one_and_may_leave_parts_unclaimed(
    uow_factory: UowFactory,
) -> None:
    route = _seed(uow_factory)
    _top_up(uow_factory, 5)
    recorded = _record(uow_factory, route, "wamid.1")
    with uow_factory() as uow:
        uow.conversations.set_openai_last_item(recorded.conversation_id, "msg_1")
        uow.commit()
    turn = _funded_turn(uow_factory, route, [recorded])
    assert turn is not None

    with uow_factory() as uow:
        conversation = uow.conversations.get(turn.conversation_id)
        assert conversation is not None
        parts = uow.turns.record_answer(turn, conversation, REPLY, ["hi"], NOW + minutes(2), claim_first=False)
        uow.commit()
        kept = uow.conversations.get(turn.conversation_id)

    assert parts is not None
    assert [p.status for p in parts] == [MessageStatus.PENDING]
    assert kept is not None
    assert kept.openai_last_item_id == "msg_1"


def test_an_answer_needs_at_least_one_part(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    _top_up(uow_factory, 5)
    turn = _funded_turn(uow_factory, route, [_record(uow_factory, route, "wamid.1")])
    assert turn is not None

    with pytest.raises(ValueError), uow_factory() as uow:
        conversation = uow.conversations.get(turn.conversation_id)
        assert conversation is not None
        uow.turns.record_answer(turn, conversation, REPLY, [], NOW, claim_first=True)


# --- replies and their delivery ------------------------------------------------------------------


def test_a_reply_is_stored_as_pending_pieces_after_the_inbound_message(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    turn, outbound = _reply(uow_factory, route, ["part one", "part two"])

    assert [(m.sequence_no, m.text, m.status, m.direction, m.content_type) for m in outbound] == [
        (2, "part one", MessageStatus.PENDING, Direction.OUTBOUND, "text"),
        (3, "part two", MessageStatus.PENDING, Direction.OUTBOUND, "text"),
    ]
    assert [(m.input_tokens, m.output_tokens) for m in outbound] == [(40, 9), (None, None)]  # usage on the first only
    assert {(m.turn_id, m.user_id, m.phone_number_id, m.platform_message_id, m.sent_at) for m in outbound} == {
        (turn.turn_id, "user-1", "pn-1", None, None)
    }
    with uow_factory() as uow:
        assert uow.messages.outbound_for_turn(turn.turn_id) == outbound
        conversation = uow.conversations.get(outbound[0].conversation_id)
    assert conversation is not None and conversation.last_message_at == NOW + minutes(1)
    assert _record(uow_factory, route, "wamid.next").sequence_no == 4


def test_the_next_reply_continues_the_sequence_numbers(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    _, first_reply = _reply(uow_factory, route, ["one"])
    conversation_id = first_reply[0].conversation_id
    later = _record(uow_factory, route, "wamid.later")
    turn = _start_turn(uow_factory, route, [later])

    with uow_factory() as uow:
        conversation = uow.conversations.get(conversation_id)
        assert conversation is not None
        second_reply = uow.messages.add_outbound(conversation, turn.turn_id, ["two", "three"], REPLY, NOW)
        uow.commit()

    assert [m.sequence_no for m in first_reply + second_reply] == [2, 4, 5]
    with uow_factory() as uow:
        assert uow.messages.outbound_for_turn(turn.turn_id) == second_reply


def test_a_reply_is_taken_for_sending_once(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    _, [message] = _reply(uow_factory, route, ["hi"])

    with uow_factory() as uow:
        assert uow.messages.start_sending(message.message_id, NOW + minutes(2)) is True
        assert uow.messages.start_sending(message.message_id, NOW + minutes(3)) is False
        uow.commit()

    sending = _stored(uow_factory, message.message_id)
    assert (sending.status, sending.updated_at) == (MessageStatus.SENDING, NOW + minutes(2))


def test_an_inbound_message_is_never_taken_for_sending(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    recorded = _record(uow_factory, route, "wamid.1")

    with uow_factory() as uow:
        assert uow.messages.start_sending(recorded.message_id, NOW) is False


def test_a_sent_reply_keeps_its_platform_id_and_send_time(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)

    sent = _sent_reply(uow_factory, route)

    assert (sent.status, sent.platform_message_id, sent.sent_at, sent.updated_at) == (
        MessageStatus.SENT,
        "wamid.out",
        NOW + minutes(1),
        NOW + minutes(1),
    )


def test_a_failed_send_keeps_the_channels_code_and_reason(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    _, [message] = _reply(uow_factory, route, ["hi"])

    with uow_factory() as uow:
        uow.messages.start_sending(message.message_id, NOW)
        uow.messages.record_send_failure(message.message_id, "131047", "Re-engagement message", NOW + minutes(2))
        uow.commit()

    failed = _stored(uow_factory, message.message_id)
    assert (failed.status, failed.failure_code, failed.failure_reason, failed.updated_at) == (
        MessageStatus.FAILED,
        "131047",
        "Re-engagement message",
        NOW + minutes(2),
    )


@pytest.mark.parametrize("outcome", ["sent", "failed"])
def test_the_last_parts_outcome_can_finish_its_turn_in_the_same_step(uow_factory: UowFactory, outcome: str) -> None:
    route = _seed(uow_factory)
    turn, [message] = _reply(uow_factory, route, ["hi"])

    with uow_factory() as uow:
        uow.messages.start_sending(message.message_id, NOW)
        if outcome == "sent":
            uow.messages.record_sent(message.message_id, "wamid.out", NOW + minutes(2), finishing=turn.turn_id)
        else:
            uow.messages.record_send_failure(
                message.message_id, "131047", "late", NOW + minutes(2), finishing=turn.turn_id
            )
        uow.commit()

    with uow_factory() as uow:
        assert uow.turns.open_turn(CHANNEL) is None
        done = uow.turns.note_attempt(turn.turn_id, NOW + minutes(3))
    assert done.status is TurnStatus.DONE
    assert _stored(uow_factory, message.message_id).status is MessageStatus(outcome)


def test_a_parts_outcome_leaves_a_turn_that_is_not_replying_alone(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    turn, [message] = _reply(uow_factory, route, ["hi"])
    with uow_factory() as uow:
        assert uow.turns.fail(turn.turn_id, "x", NOW) is False  # replying: cannot fail
        uow.turns.finish(turn.turn_id, NOW)
        uow.commit()
    other = _start_turn(uow_factory, route, [_record(uow_factory, route, "wamid.next")])

    with uow_factory() as uow:
        uow.messages.record_sent(message.message_id, "wamid.out", NOW + minutes(2), finishing=other.turn_id)
        uow.commit()

    with uow_factory() as uow:
        assert uow.turns.open_turn(CHANNEL) == other  # awaiting_ai, not replying: not finished


def test_delivery_reports_out_of_order_never_move_the_status_back(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    message = _sent_reply(uow_factory, route)

    assert _report(uow_factory, MessageStatus.READ, NOW + minutes(2)) is True
    read = _stored(uow_factory, message.message_id)
    assert _report(uow_factory, MessageStatus.DELIVERED, NOW + minutes(3)) is True
    assert _report(uow_factory, MessageStatus.SENT, NOW + minutes(4)) is True

    assert (read.status, read.updated_at, read.sent_at) == (MessageStatus.READ, NOW + minutes(2), NOW + minutes(1))
    assert _stored(uow_factory, message.message_id) == read  # reports that change nothing leave it untouched


def test_a_failure_after_delivery_keeps_delivered_and_records_the_error(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    message = _sent_reply(uow_factory, route)

    _report(uow_factory, MessageStatus.DELIVERED)
    assert _report(
        uow_factory, MessageStatus.FAILED, NOW + minutes(3), error_code="131026", error_reason="Message undeliverable"
    )

    stored = _stored(uow_factory, message.message_id)
    assert (stored.status, stored.failure_code, stored.failure_reason, stored.updated_at) == (
        MessageStatus.DELIVERED,
        "131026",
        "Message undeliverable",
        NOW + minutes(3),
    )


def test_a_later_error_without_a_reason_keeps_the_known_reason(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    message = _sent_reply(uow_factory, route)
    _report(uow_factory, MessageStatus.FAILED, error_code="131049", error_reason="ecosystem engagement")

    _report(uow_factory, MessageStatus.FAILED, NOW + minutes(3), error_code="131050")

    stored = _stored(uow_factory, message.message_id)
    assert (stored.status, stored.failure_code, stored.failure_reason) == (
        MessageStatus.FAILED,
        "131050",
        "ecosystem engagement",
    )


def test_a_failure_before_delivery_fails_the_message(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    message = _sent_reply(uow_factory, route)

    _report(uow_factory, MessageStatus.FAILED, error_code="131049", error_reason="ecosystem engagement")

    stored = _stored(uow_factory, message.message_id)
    assert (stored.status, stored.failure_code, stored.failure_reason) == (
        MessageStatus.FAILED,
        "131049",
        "ecosystem engagement",
    )


def test_a_report_about_an_unknown_message_is_not_applied(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    message = _sent_reply(uow_factory, route)

    assert _report(uow_factory, MessageStatus.READ, platform_message_id="wamid.unknown") is False
    assert _stored(uow_factory, message.message_id) == message


def test_a_report_naming_an_inbound_message_is_not_applied(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    recorded = _record(uow_factory, route, "wamid.in-1")
    before = _stored(uow_factory, recorded.message_id)

    assert _report(uow_factory, MessageStatus.READ, platform_message_id="wamid.in-1") is False
    assert _stored(uow_factory, recorded.message_id) == before


# --- stalled work --------------------------------------------------------------------------------


def _stalled_setup(uow_factory: UowFactory) -> dict[str, int]:
    """Stalled work on two channels, oldest first: dan (pn-2, received), bob (pn-1, open turn),
    ann (pn-1, received); fresh work (cy) and finished work (eve) that is not stalled."""
    route = _seed(uow_factory, "user-1", "pn-1")
    other = _seed(uow_factory, "user-1", "pn-2")
    eve = _record(uow_factory, route, "wamid.eve", customer_id="eve", now=NOW - minutes(30))
    finished = _start_turn(uow_factory, route, [eve], now=NOW - minutes(30))
    with uow_factory() as uow:
        uow.turns.record_reply(finished.turn_id, REPLY, NOW - minutes(30))
        uow.messages.mark_inbound([eve.message_id], MessageStatus.ANSWERED, NOW - minutes(30))
        uow.turns.finish(finished.turn_id, NOW - minutes(30))
        uow.commit()
    dan = _record(uow_factory, other, "wamid.dan", customer_id="dan", now=NOW - minutes(20))
    bob = _record(uow_factory, route, "wamid.bob", customer_id="bob", now=NOW - minutes(10))
    _start_turn(uow_factory, route, [bob], now=NOW - minutes(10))
    ann = _record(uow_factory, route, "wamid.ann", customer_id="ann", now=NOW - minutes(5))
    _record(uow_factory, route, "wamid.cy", customer_id="cy", now=NOW + minutes(10))
    return {"dan": dan.conversation_id, "bob": bob.conversation_id, "ann": ann.conversation_id}


def test_stalled_conversations_are_listed_oldest_first(uow_factory: UowFactory) -> None:
    conversations = _stalled_setup(uow_factory)

    with uow_factory() as uow:
        stalled = uow.messages.stalled_scopes(OrderingScope.CONVERSATION, NOW, limit=10)
        oldest = uow.messages.stalled_scopes(OrderingScope.CONVERSATION, NOW, limit=1)
        none_older = uow.messages.stalled_scopes(OrderingScope.CONVERSATION, NOW - minutes(20), limit=10)
    assert stalled == [_conversation_scope(conversations[name]) for name in ("dan", "bob", "ann")]
    assert oldest == [_conversation_scope(conversations["dan"])]
    assert none_older == []  # `older_than` is exclusive, and a finished turn is not stalled


def test_stalled_channels_are_listed_oldest_first(uow_factory: UowFactory) -> None:
    _stalled_setup(uow_factory)

    with uow_factory() as uow:
        stalled = uow.messages.stalled_scopes(OrderingScope.PHONE_NUMBER, NOW, limit=10)
        oldest = uow.messages.stalled_scopes(OrderingScope.PHONE_NUMBER, NOW, limit=1)
        only_pn_1 = uow.messages.stalled_scopes(OrderingScope.PHONE_NUMBER, NOW - minutes(7), limit=10)
    assert stalled == [ScopeKey(OrderingScope.PHONE_NUMBER, "pn-2"), CHANNEL]
    assert oldest == [ScopeKey(OrderingScope.PHONE_NUMBER, "pn-2")]
    assert only_pn_1 == [ScopeKey(OrderingScope.PHONE_NUMBER, "pn-2"), CHANNEL]


# --- listing -------------------------------------------------------------------------------------


def test_listing_pages_newest_first_with_a_keyset_cursor(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    ids = [_record(uow_factory, route, f"wamid.{n}").message_id for n in range(5)]

    first, cursor = _list(uow_factory, "user-1", limit=2)
    second, cursor_2 = _list(uow_factory, "user-1", limit=2, cursor=cursor)
    last, cursor_3 = _list(uow_factory, "user-1", limit=2, cursor=cursor_2)

    assert [first, second, last] == [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]
    assert (cursor, cursor_2, cursor_3) == (ids[3], ids[1], None)


def test_a_full_last_page_has_no_next_cursor(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    for n in range(2):
        _record(uow_factory, route, f"wamid.{n}")

    assert _list(uow_factory, "user-1", limit=2)[1] is None
    assert _list(uow_factory, "user-2") == ([], None)


def test_listing_never_shows_another_tenants_messages(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory, "user-1", "pn-1")
    other = _seed(uow_factory, "user-2", "pn-9")
    mine = _record(uow_factory, route, "wamid.1", customer_id="shared-customer")
    theirs = _record(uow_factory, other, "wamid.2", customer_id="shared-customer")

    assert _list(uow_factory, "user-1")[0] == [mine.message_id]
    assert _list(uow_factory, "user-1", phone_number_id="pn-9")[0] == []
    assert _list(uow_factory, "user-1", conversation_id=theirs.conversation_id)[0] == []
    assert _list(uow_factory, "user-1", customer_id="shared-customer")[0] == [mine.message_id]
    assert _list(uow_factory, "user-2")[0] == [theirs.message_id]


def test_listing_filters_by_channel_conversation_customer_and_status(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory, "user-1", "pn-1")
    second_channel = _seed(uow_factory, "user-1", "pn-2")
    ann = _record(uow_factory, route, "wamid.1", customer_id="ann")
    bob = _record(uow_factory, route, "wamid.2", customer_id="bob")
    skipped = _record(uow_factory, route, "wamid.3", customer_id="bob", text=None, skip_reason="sticker")
    elsewhere = _record(uow_factory, second_channel, "wamid.4", customer_id="ann")

    assert _list(uow_factory, "user-1", phone_number_id="pn-2")[0] == [elsewhere.message_id]
    assert _list(uow_factory, "user-1", conversation_id=bob.conversation_id)[0] == [skipped.message_id, bob.message_id]
    assert _list(uow_factory, "user-1", customer_id="ann")[0] == [elsewhere.message_id, ann.message_id]
    assert _list(uow_factory, "user-1", status=MessageStatus.SKIPPED)[0] == [skipped.message_id]
    assert _list(uow_factory, "user-1", customer_id="ann", phone_number_id="pn-1")[0] == [ann.message_id]
    assert _list(uow_factory, "user-1", customer_id="nobody")[0] == []


def test_listing_since_is_inclusive_and_until_exclusive(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    early = _record(uow_factory, route, "wamid.1", now=NOW)
    on_the_mark = _record(uow_factory, route, "wamid.2", now=NOW + minutes(1))
    late = _record(uow_factory, route, "wamid.3", now=NOW + minutes(2))

    assert _list(uow_factory, "user-1", since=NOW + minutes(1))[0] == [late.message_id, on_the_mark.message_id]
    assert _list(uow_factory, "user-1", until=NOW + minutes(1))[0] == [early.message_id]
    assert _list(uow_factory, "user-1", since=NOW + minutes(1), until=NOW + minutes(2))[0] == [on_the_mark.message_id]


def test_listing_in_sequence_order_pages_through_a_conversation(uow_factory: UowFactory) -> None:
    route = _seed(uow_factory)
    recorded = [_record(uow_factory, route, f"wamid.{n}") for n in range(3)]
    _record(uow_factory, route, "wamid.other", customer_id="bob")
    conversation_id = recorded[0].conversation_id

    first, cursor = _list(uow_factory, "user-1", conversation_id=conversation_id, order="sequence", limit=2)
    rest, end = _list(uow_factory, "user-1", conversation_id=conversation_id, order="sequence", limit=2, cursor=cursor)

    assert first + rest == [r.message_id for r in recorded]
    assert (cursor, end) == (2, None)


def test_sequence_order_needs_a_conversation(uow_factory: UowFactory) -> None:
    _seed(uow_factory)

    with pytest.raises(ValidationFailed) as raised:
        _list(uow_factory, "user-1", order="sequence")
    assert raised.value.field == "order"


def test_an_unknown_order_is_refused(uow_factory: UowFactory) -> None:
    _seed(uow_factory)

    with pytest.raises(ValidationFailed) as raised:
        _list(uow_factory, "user-1", order="oldest")
    assert raised.value.field == "order"


# --- the unit of work ----------------------------------------------------------------------------


Everything = tuple[User | None, list[Channel], list[Agent], int, list[LedgerEntry], list[Message]]


def _everything_of_user_1(uow_factory: UowFactory) -> Everything:
    with uow_factory() as uow:
        return (
            uow.users.get("user-1"),
            uow.channels.list("user-1"),
            uow.agents.list("user-1"),
            uow.credits.get("user-1").balance,
            uow.credits.ledger("user-1", limit=10),
            list(uow.messages.list("user-1", MessageQuery()).items),
        )


def _do_a_bit_of_everything(uow: UnitOfWork) -> None:
    route = Route(channel=a_channel("user-1", "pn-1"), agent=an_agent("user-1", "pn-1"))
    uow.users.add(a_user("user-1"))
    uow.channels.add(route.channel)
    assert route.agent is not None
    uow.agents.add(route.agent)
    uow.credits.top_up("user-1", 10, None, "order-1", NOW)
    uow.messages.record_inbound(route, an_inbound(route, "wamid.1"), NOW)


def test_work_left_uncommitted_is_rolled_back(uow_factory: UowFactory) -> None:
    with uow_factory() as uow:
        _do_a_bit_of_everything(uow)

    assert _everything_of_user_1(uow_factory) == (None, [], [], 0, [], [])


def test_an_exception_rolls_the_work_back(uow_factory: UowFactory) -> None:
    with pytest.raises(RuntimeError), uow_factory() as uow:
        _do_a_bit_of_everything(uow)
        raise RuntimeError("use case failed")

    assert _everything_of_user_1(uow_factory) == (None, [], [], 0, [], [])


def test_rolled_back_work_leaves_no_trace_for_the_next_attempt(uow_factory: UowFactory) -> None:
    with uow_factory() as uow:
        _do_a_bit_of_everything(uow)

    with uow_factory() as uow:
        _do_a_bit_of_everything(uow)
        uow.commit()

    users, channels, agents, balance, ledger, messages = _everything_of_user_1(uow_factory)
    assert (users, balance, len(channels), len(agents), len(ledger)) == (a_user("user-1"), 10, 1, 1, 1)
    assert [(m.platform_message_id, m.sequence_no) for m in messages] == [("wamid.1", 1)]


def test_work_after_a_commit_is_rolled_back_on_its_own(uow_factory: UowFactory) -> None:
    with uow_factory() as uow:
        uow.users.add(a_user("user-1"))
        uow.commit()
        uow.users.add(a_user("user-2"))

    with uow_factory() as uow:
        assert uow.users.get("user-1") == a_user("user-1")
        assert uow.users.get("user-2") is None

"""The PostgreSQL unit of work and its tenancy, credits, conversation and turn repositories, on real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC

import pytest
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from adapters.postgres.pool import open_pool
from adapters.postgres.unit_of_work import PostgresUnitOfWork
from domain.credits import LedgerKind
from domain.errors import Conflict, NotFound
from domain.messages import MessageStatus, OrderingScope, ScopeKey
from domain.turns import AIReply, TurnStatus
from tests.support.postgres import NOW, a_channel, a_user, an_agent, an_inbound, minutes, seed_route


@pytest.fixture
def pool(clean_database: str) -> Iterator[ConnectionPool]:
    pool = open_pool(clean_database, size=12, timeout_s=10)
    yield pool
    pool.close()


def _uow(pool: ConnectionPool) -> PostgresUnitOfWork:
    return PostgresUnitOfWork(pool)


# --- the unit of work ----------------------------------------------------------------------------


def test_committed_work_is_visible_to_the_next_unit_of_work(pool: ConnectionPool) -> None:
    with _uow(pool) as uow:
        uow.users.add(a_user())
        uow.commit()

    with _uow(pool) as uow:
        assert uow.users.get("user-1") == a_user()


def test_work_not_committed_is_rolled_back_at_exit(pool: ConnectionPool) -> None:
    with _uow(pool) as uow:
        uow.users.add(a_user())

    with _uow(pool) as uow:
        assert uow.users.get("user-1") is None


def test_an_exception_rolls_the_work_back(pool: ConnectionPool) -> None:
    with pytest.raises(RuntimeError), _uow(pool) as uow:
        uow.users.add(a_user())
        raise RuntimeError("use case failed")

    with _uow(pool) as uow:
        assert uow.users.get("user-1") is None


def test_work_after_a_commit_is_a_new_transaction(pool: ConnectionPool) -> None:
    with _uow(pool) as uow:
        uow.users.add(a_user("user-1"))
        uow.commit()
        uow.users.add(a_user("user-2"))

    with _uow(pool) as uow:
        assert uow.users.get("user-1") is not None
        assert uow.users.get("user-2") is None


def test_one_instance_can_be_entered_again_and_gives_its_connection_back(pool: ConnectionPool) -> None:
    uow = _uow(pool)
    for user_id in ("user-1", "user-2", "user-3"):
        with uow:
            uow.users.add(a_user(user_id))
            uow.commit()

    with uow:
        assert [uow.users.get(u) is not None for u in ("user-1", "user-2", "user-3")] == [True, True, True]
    assert pool.get_stats()["pool_available"] == pool.get_stats()["pool_size"]


def test_repositories_refuse_to_work_outside_the_with_block(pool: ConnectionPool) -> None:
    with pytest.raises(RuntimeError, match="outside"):
        _uow(pool).users.get("user-1")


def test_timestamps_come_back_as_aware_utc_datetimes(pool: ConnectionPool) -> None:
    with _uow(pool) as uow:
        uow.users.add(a_user())
        uow.commit()
        user = uow.users.get("user-1")

    assert user is not None
    assert user.created_at.tzinfo is UTC
    assert user.created_at == NOW


# --- users, channels, agents ---------------------------------------------------------------------


def test_an_autocommit_unit_of_work_keeps_each_statement_without_a_transaction(pool: ConnectionPool) -> None:
    with PostgresUnitOfWork(pool, autocommit=True) as uow:
        uow.users.add(a_user())
        connection = uow._connection()
        assert connection.info.transaction_status is TransactionStatus.IDLE  # nothing begun, nothing to end
        # No commit: an autocommit unit of work is for blocks with one change, which stands at once.

    with _uow(pool) as uow:
        assert uow.users.get("user-1") == a_user()


def test_a_connection_goes_back_to_the_pool_transactional_after_autocommit_use(pool: ConnectionPool) -> None:
    single = open_pool(pool.conninfo, size=1, timeout_s=10)
    try:
        with PostgresUnitOfWork(single, autocommit=True) as uow:
            uow.users.get("user-1")

        with PostgresUnitOfWork(single) as uow:
            uow.users.add(a_user())  # not committed: rolled back at exit, as in any transactional unit

        with PostgresUnitOfWork(single) as uow:
            assert uow.users.get("user-1") is None
    finally:
        single.close()


def test_concurrent_funded_turns_never_hold_more_than_the_balance(pool: ConnectionPool) -> None:
    route = seed_route(pool)
    _top_up(pool, 5)
    with _uow(pool) as uow:
        recorded = [
            uow.messages.record_inbound(route, an_inbound(route, f"wamid.{n}", customer_id=f"c{n}"), NOW)
            for n in range(8)
        ]
        uow.commit()
    barrier = threading.Barrier(8)

    def start(n: int) -> bool:
        with PostgresUnitOfWork(pool, autocommit=True) as uow:
            barrier.wait()
            turn = uow.turns.start_funded(
                user_id="user-1",
                conversation_id=recorded[n].conversation_id,
                phone_number_id="pn-1",
                inbound_ids=[recorded[n].message_id],
                credits_reserved=1,
                now=NOW,
            )
            return turn is not None

    with ThreadPoolExecutor(max_workers=8) as executor:
        results = list(executor.map(start, range(8)))

    assert results.count(True) == 5
    with _uow(pool) as uow:
        credits = uow.credits.get("user-1")
        statuses = [m.status for m in uow.messages.get_many([r.message_id for r in recorded])]
    assert (credits.balance, credits.reserved) == (5, 5)
    assert sorted(statuses) == sorted([MessageStatus.PROCESSING] * 5 + [MessageStatus.RECEIVED] * 3)


def test_concurrent_answers_to_one_turn_store_one_reply_and_charge_once(pool: ConnectionPool) -> None:
    route = seed_route(pool)
    _top_up(pool, 5)
    with PostgresUnitOfWork(pool, autocommit=True) as uow:
        recorded = uow.messages.record_inbound(route, an_inbound(route, "wamid.1"), NOW)
        turn = uow.turns.start_funded(
            user_id="user-1",
            conversation_id=recorded.conversation_id,
            phone_number_id="pn-1",
            inbound_ids=[recorded.message_id],
            credits_reserved=1,
            now=NOW,
        )
        conversation = uow.conversations.get(recorded.conversation_id)
    assert turn is not None and conversation is not None
    barrier = threading.Barrier(4)

    def answer(n: int) -> bool:
        with PostgresUnitOfWork(pool, autocommit=True) as uow:
            barrier.wait()
            reply = AIReply(f"answer {n}", f"resp_{n}", 1, 1)
            return (
                uow.turns.record_answer(turn, conversation, reply, [f"answer {n}"], NOW, claim_first=True) is not None
            )

    with ThreadPoolExecutor(max_workers=4) as executor:
        assert list(executor.map(answer, range(4))).count(True) == 1
    with _uow(pool) as uow:
        [part] = uow.messages.outbound_for_turn(turn.turn_id)
        credits = uow.credits.get("user-1")
        charges = [e for e in uow.credits.ledger("user-1", limit=10) if e.kind is LedgerKind.CHARGE]
    assert part.status is MessageStatus.SENDING
    assert (credits.balance, credits.reserved, len(charges)) == (4, 0, 1)


def test_user_is_found_by_its_api_key_hash(pool: ConnectionPool) -> None:
    with _uow(pool) as uow:
        uow.users.add(a_user())
        uow.commit()
        assert uow.users.by_api_key_hash("hash-user-1") == a_user()
        assert uow.users.by_api_key_hash("unknown") is None


def test_a_taken_email_is_a_conflict_naming_the_field(pool: ConnectionPool) -> None:
    with _uow(pool) as uow:
        uow.users.add(a_user("user-1", email="boss@example.com"))
        uow.commit()

    with pytest.raises(Conflict, match="e-mail") as raised, _uow(pool) as uow:
        uow.users.add(a_user("user-2", email="boss@example.com"))
    assert raised.value.field == "email"


def test_a_registered_phone_number_id_is_a_conflict(pool: ConnectionPool) -> None:
    seed_route(pool, "user-1", "pn-1")
    with _uow(pool) as uow:
        uow.users.add(a_user("user-2"))
        uow.commit()

    with pytest.raises(Conflict, match="pn-1 is registered already"), _uow(pool) as uow:
        uow.channels.add(a_channel("user-2", "pn-1"))


def test_a_second_agent_on_a_channel_is_a_conflict(pool: ConnectionPool) -> None:
    seed_route(pool, "user-1", "pn-1")

    with pytest.raises(Conflict, match="already has an agent") as raised, _uow(pool) as uow:
        uow.agents.add(an_agent("user-1", "pn-1", agent_id="agent-2"))
    assert raised.value.field == "phone_number_id"


def test_the_unit_of_work_is_usable_again_after_a_conflict(pool: ConnectionPool) -> None:
    uow = _uow(pool)
    with uow:
        uow.users.add(a_user("user-1", email="boss@example.com"))
        uow.commit()
    with pytest.raises(Conflict), uow:
        uow.users.add(a_user("user-2", email="boss@example.com"))

    with uow:
        uow.users.add(a_user("user-3"))
        uow.commit()
        assert uow.users.get("user-3") is not None


def test_channels_and_agents_are_scoped_by_user(pool: ConnectionPool) -> None:
    seed_route(pool, "user-1", "pn-1")
    seed_route(pool, "user-1", "pn-2")
    seed_route(pool, "user-2", "pn-3")

    with _uow(pool) as uow:
        assert [c.phone_number_id for c in uow.channels.list("user-1")] == ["pn-1", "pn-2"]
        assert uow.channels.get("user-1", "pn-3") is None
        assert uow.channels.get("user-2", "pn-3") == a_channel("user-2", "pn-3")
        assert [a.agent_id for a in uow.agents.list("user-2")] == ["agent-pn-3"]
        assert uow.agents.get("user-1", "agent-pn-3") is None
        assert uow.agents.get("user-2", "agent-pn-3") == an_agent("user-2", "pn-3")


def test_route_gives_the_channel_and_its_agent(pool: ConnectionPool) -> None:
    route = seed_route(pool, "user-1", "pn-1")
    with _uow(pool) as uow:
        uow.channels.add(a_channel("user-1", "pn-no-agent"))
        uow.commit()

        assert uow.channels.route("pn-1") == route
        without_agent = uow.channels.route("pn-no-agent")
        assert without_agent is not None and without_agent.agent is None
        assert uow.channels.route("pn-unknown") is None


# --- credits -------------------------------------------------------------------------------------


def _top_up(pool: ConnectionPool, amount: int, user_id: str = "user-1") -> None:
    with _uow(pool) as uow:
        uow.credits.top_up(user_id, amount, "test", None, NOW)
        uow.commit()


def test_a_user_without_credits_has_a_zero_balance(pool: ConnectionPool) -> None:
    with _uow(pool) as uow:
        credits = uow.credits.get("user-1")
    assert (credits.balance, credits.reserved) == (0, 0)


def test_top_ups_add_up_and_are_kept_in_the_ledger_newest_first(pool: ConnectionPool) -> None:
    seed_route(pool)
    with _uow(pool) as uow:
        first = uow.credits.top_up("user-1", 10, "welcome", None, NOW)
        second = uow.credits.top_up("user-1", 5, None, None, NOW + minutes(1))
        uow.commit()

        assert (first.kind, first.amount, first.balance_after, first.reason) == (LedgerKind.TOP_UP, 10, 10, "welcome")
        assert second.balance_after == 15
        assert uow.credits.get("user-1").balance == 15
        assert uow.credits.ledger("user-1", limit=10) == [second, first]
        assert uow.credits.ledger("user-1", limit=1) == [second]


def test_a_top_up_repeated_with_its_idempotency_key_changes_nothing(pool: ConnectionPool) -> None:
    seed_route(pool)
    with _uow(pool) as uow:
        first = uow.credits.top_up("user-1", 10, None, "order-42", NOW)
        uow.commit()
    with _uow(pool) as uow:
        again = uow.credits.top_up("user-1", 10, None, "order-42", NOW + minutes(1))
        uow.commit()

        assert again == first
        assert uow.credits.get("user-1").balance == 10
        assert len(uow.credits.ledger("user-1", limit=10)) == 1


def test_concurrent_top_ups_with_one_idempotency_key_credit_once(pool: ConnectionPool) -> None:
    seed_route(pool)
    _top_up(pool, 1)
    barrier = threading.Barrier(6)

    def top_up(_: int) -> int:
        with _uow(pool) as uow:
            uow.credits.get("user-1")
            barrier.wait()
            entry = uow.credits.top_up("user-1", 10, None, "order-7", NOW)
            uow.commit()
            return entry.entry_id

    with ThreadPoolExecutor(max_workers=6) as executor:
        entry_ids = set(executor.map(top_up, range(6)))

    assert len(entry_ids) == 1
    with _uow(pool) as uow:
        assert uow.credits.get("user-1").balance == 11


def test_reserve_holds_only_what_is_available(pool: ConnectionPool) -> None:
    seed_route(pool)
    _top_up(pool, 5)
    with _uow(pool) as uow:
        assert uow.credits.reserve("user-1", 3, NOW) is True
        assert uow.credits.reserve("user-1", 3, NOW) is False
        assert uow.credits.reserve("user-1", 2, NOW) is True
        uow.commit()
        credits = uow.credits.get("user-1")
    assert (credits.balance, credits.reserved, credits.available) == (5, 5, 0)


def test_reserve_without_an_account_holds_nothing(pool: ConnectionPool) -> None:
    with _uow(pool) as uow:
        assert uow.credits.reserve("user-1", 1, NOW) is False


def test_concurrent_reservations_never_exceed_the_balance(pool: ConnectionPool) -> None:
    seed_route(pool)
    _top_up(pool, 5)
    barrier = threading.Barrier(8)

    def reserve(_: int) -> bool:
        with _uow(pool) as uow:
            uow.credits.get("user-1")
            barrier.wait()
            held = uow.credits.reserve("user-1", 1, NOW)
            uow.commit()
            return held

    with ThreadPoolExecutor(max_workers=8) as executor:
        results = list(executor.map(reserve, range(8)))

    assert results.count(True) == 5
    with _uow(pool) as uow:
        credits = uow.credits.get("user-1")
    assert (credits.balance, credits.reserved) == (5, 5)


def test_release_gives_a_hold_back(pool: ConnectionPool) -> None:
    seed_route(pool)
    _top_up(pool, 5)
    with _uow(pool) as uow:
        uow.credits.reserve("user-1", 4, NOW)
        uow.credits.release("user-1", 4, NOW)
        uow.commit()
        assert uow.credits.get("user-1").available == 5


def test_releasing_more_than_is_held_is_a_conflict(pool: ConnectionPool) -> None:
    seed_route(pool)
    _top_up(pool, 5)
    with pytest.raises(Conflict), _uow(pool) as uow:
        uow.credits.release("user-1", 1, NOW)


def _start_turn(pool: ConnectionPool, credits_reserved: int = 1) -> int:
    route = seed_route(pool)
    with _uow(pool) as uow:
        recorded = uow.messages.record_inbound(route, an_inbound(route, "wamid.1"), NOW)
        turn = uow.turns.start(
            user_id="user-1",
            conversation_id=recorded.conversation_id,
            phone_number_id="pn-1",
            inbound_ids=[recorded.message_id],
            credits_reserved=credits_reserved,
            now=NOW,
        )
        uow.commit()
    return turn.turn_id


def test_charge_turns_a_hold_into_one_ledger_entry(pool: ConnectionPool) -> None:
    turn_id = _start_turn(pool)
    _top_up(pool, 5)
    with _uow(pool) as uow:
        uow.credits.reserve("user-1", 2, NOW)
        entry = uow.credits.charge("user-1", 2, turn_id, NOW)
        uow.commit()

        assert (entry.kind, entry.amount, entry.balance_after, entry.turn_id) == (LedgerKind.CHARGE, -2, 3, turn_id)
        credits = uow.credits.get("user-1")
    assert (credits.balance, credits.reserved) == (3, 0)


def test_a_turn_charged_twice_is_charged_once(pool: ConnectionPool) -> None:
    turn_id = _start_turn(pool)
    _top_up(pool, 5)
    with _uow(pool) as uow:
        uow.credits.reserve("user-1", 1, NOW)
        first = uow.credits.charge("user-1", 1, turn_id, NOW)
        uow.commit()
    with _uow(pool) as uow:
        again = uow.credits.charge("user-1", 1, turn_id, NOW + minutes(1))
        uow.commit()

        assert again == first
        credits = uow.credits.get("user-1")
    assert (credits.balance, credits.reserved) == (4, 0)


def test_concurrent_charges_of_one_turn_charge_once(pool: ConnectionPool) -> None:
    turn_id = _start_turn(pool)
    _top_up(pool, 5)
    with _uow(pool) as uow:
        uow.credits.reserve("user-1", 2, NOW)
        uow.commit()
    barrier = threading.Barrier(4)

    def charge(_: int) -> int:
        with _uow(pool) as uow:
            uow.credits.get("user-1")
            barrier.wait()
            entry = uow.credits.charge("user-1", 1, turn_id, NOW)
            uow.commit()
            return entry.entry_id

    with ThreadPoolExecutor(max_workers=4) as executor:
        assert len(set(executor.map(charge, range(4)))) == 1
    with _uow(pool) as uow:
        credits = uow.credits.get("user-1")
    assert (credits.balance, credits.reserved) == (4, 1)


def test_charging_more_than_is_held_is_a_conflict(pool: ConnectionPool) -> None:
    turn_id = _start_turn(pool)
    _top_up(pool, 5)
    with pytest.raises(Conflict, match="held"), _uow(pool) as uow:
        uow.credits.charge("user-1", 1, turn_id, NOW)


# --- conversations -------------------------------------------------------------------------------


def test_conversation_keeps_its_openai_ids(pool: ConnectionPool) -> None:
    route = seed_route(pool)
    with _uow(pool) as uow:
        recorded = uow.messages.record_inbound(route, an_inbound(route, "wamid.1"), NOW)
        uow.conversations.set_openai_conversation(recorded.conversation_id, "conv_abc")
        uow.conversations.set_openai_last_item(recorded.conversation_id, "msg_1")
        uow.commit()

        conversation = uow.conversations.get(recorded.conversation_id)
        assert conversation is not None
        assert (conversation.openai_conversation_id, conversation.openai_last_item_id) == ("conv_abc", "msg_1")
        assert (conversation.user_id, conversation.agent_id, conversation.customer_id) == (
            "user-1",
            "agent-pn-1",
            "customer-1",
        )
        assert conversation.is_active
        assert uow.conversations.get(recorded.conversation_id + 1000) is None


# --- turns ---------------------------------------------------------------------------------------


def test_starting_a_turn_marks_its_messages_processing(pool: ConnectionPool) -> None:
    route = seed_route(pool)
    with _uow(pool) as uow:
        first = uow.messages.record_inbound(route, an_inbound(route, "wamid.1"), NOW)
        second = uow.messages.record_inbound(route, an_inbound(route, "wamid.2"), NOW)
        turn = uow.turns.start(
            user_id="user-1",
            conversation_id=first.conversation_id,
            phone_number_id="pn-1",
            inbound_ids=[first.message_id, second.message_id],
            credits_reserved=1,
            now=NOW,
        )
        uow.commit()

        assert (turn.status, turn.inbound_ids, turn.credits_reserved, turn.attempts) == (
            TurnStatus.AWAITING_AI,
            (first.message_id, second.message_id),
            1,
            0,
        )
        messages = uow.messages.get_many([first.message_id, second.message_id])
    assert [(m.status, m.turn_id) for m in messages] == [(MessageStatus.PROCESSING, turn.turn_id)] * 2


def test_open_turn_is_the_oldest_unfinished_turn_of_the_scope(pool: ConnectionPool) -> None:
    turn_id = _start_turn(pool)
    with _uow(pool) as uow:
        turn = uow.turns.note_attempt(turn_id, NOW)
        by_conversation = uow.turns.open_turn(ScopeKey(OrderingScope.CONVERSATION, str(turn.conversation_id)))
        by_channel = uow.turns.open_turn(ScopeKey(OrderingScope.PHONE_NUMBER, "pn-1"))
        assert by_conversation == by_channel == turn
        assert uow.turns.open_turn(ScopeKey(OrderingScope.PHONE_NUMBER, "pn-other")) is None

        uow.turns.fail(turn_id, "openai down", NOW)
        assert uow.turns.open_turn(ScopeKey(OrderingScope.PHONE_NUMBER, "pn-1")) is None


def test_note_attempt_counts_attempts(pool: ConnectionPool) -> None:
    turn_id = _start_turn(pool)
    with _uow(pool) as uow:
        uow.turns.note_attempt(turn_id, NOW)
        turn = uow.turns.note_attempt(turn_id, NOW + minutes(1))
    assert (turn.attempts, turn.updated_at) == (2, NOW + minutes(1))


def test_note_attempt_on_an_unknown_turn_is_not_found(pool: ConnectionPool) -> None:
    with pytest.raises(NotFound), _uow(pool) as uow:
        uow.turns.note_attempt(12345, NOW)


def test_a_reply_is_recorded_once_and_the_turn_finishes(pool: ConnectionPool) -> None:
    turn_id = _start_turn(pool)
    reply = AIReply(text="Hi!", response_id="resp_1", input_tokens=12, output_tokens=3)
    with _uow(pool) as uow:
        assert uow.turns.record_reply(turn_id, reply, NOW) is True
        assert uow.turns.record_reply(turn_id, reply, NOW) is False
        assert uow.turns.fail(turn_id, "too late", NOW) is False
        turn = uow.turns.open_turn(ScopeKey(OrderingScope.PHONE_NUMBER, "pn-1"))
        assert turn is not None and (turn.status, turn.response_id) == (TurnStatus.REPLYING, "resp_1")

        uow.turns.finish(turn_id, NOW)
        assert uow.turns.open_turn(ScopeKey(OrderingScope.PHONE_NUMBER, "pn-1")) is None


def test_a_failed_turn_keeps_its_reason_and_takes_no_reply(pool: ConnectionPool) -> None:
    turn_id = _start_turn(pool)
    with _uow(pool) as uow:
        assert uow.turns.fail(turn_id, "openai down", NOW) is True
        assert uow.turns.record_reply(turn_id, AIReply("late", None, None, None), NOW) is False
        turn = uow.turns.note_attempt(turn_id, NOW)
    assert (turn.status, turn.failure_reason) == (TurnStatus.FAILED, "openai down")

"""The PostgreSQL unit of work on real PostgreSQL: transactions, connections, the repositories' own errors.

What every adapter must do alike is in test_repository_contract.py; this is what only PostgreSQL can show."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC

import pytest
from psycopg_pool import ConnectionPool

from adapters.postgres.pool import open_pool
from adapters.postgres.unit_of_work import PostgresUnitOfWork
from domain.credits import CreditMovement
from domain.errors import Conflict
from tests.support.garbage import left_in_cycles
from tests.support.postgres import NOW, a_channel, a_user, an_agent, seed_route
from tests.support.secrets import TEST_CIPHER


@pytest.fixture
def pool(clean_database: str) -> Iterator[ConnectionPool]:
    pool = open_pool(clean_database, size=12, timeout_s=10)
    yield pool
    pool.close()


def _uow(pool: ConnectionPool) -> PostgresUnitOfWork:
    return PostgresUnitOfWork(pool, cipher=TEST_CIPHER)


# --- the unit of work ----------------------------------------------------------------------------


def test_committed_work_is_visible_to_the_next_unit_of_work(pool: ConnectionPool) -> None:
    with _uow(pool) as uow:
        uow.users.add(a_user())
        uow.commit()

    with _uow(pool) as uow:
        assert uow.users.get("user-1") == a_user()


def test_a_unit_of_work_is_freed_when_dropped_not_left_for_the_garbage_collector(pool: ConnectionPool) -> None:
    def use_one() -> None:
        with _uow(pool) as uow:
            uow.users.add(a_user())
            uow.commit()

    assert left_in_cycles(use_one) == []


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
    assert _every_connection_comes_back(pool)


def _every_connection_comes_back(pool: ConnectionPool, within_s: float = 5.0) -> bool:
    # `pool_size` counts a connection the pool is still opening in the background (it grows on
    # demand), so the counts agree only once that one is ready too: wait for it, not for luck.
    deadline = time.monotonic() + within_s
    while True:
        stats = pool.get_stats()
        if stats["pool_available"] == stats["pool_size"]:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


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


# --- the repositories' own errors -----------------------------------------------------------------


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


# --- credits -------------------------------------------------------------------------------------


def _top_up(pool: ConnectionPool, amount: int, user_id: str = "user-1") -> None:
    with _uow(pool) as uow:
        uow.credits.record(CreditMovement.top_up(user_id, amount, "test"), NOW)
        uow.commit()


def test_concurrent_top_ups_with_one_idempotency_key_credit_once(pool: ConnectionPool) -> None:
    seed_route(pool)
    _top_up(pool, 1)
    barrier = threading.Barrier(6)

    def top_up(_: int) -> int:
        with _uow(pool) as uow:
            uow.credits.get("user-1")
            barrier.wait()
            entry = uow.credits.record(CreditMovement.top_up("user-1", 10, None), NOW, idempotency_key="order-7")
            uow.commit()
            return entry.entry_id

    with ThreadPoolExecutor(max_workers=6) as executor:
        entry_ids = set(executor.map(top_up, range(6)))

    assert len(entry_ids) == 1
    with _uow(pool) as uow:
        assert uow.credits.get("user-1").balance == 11

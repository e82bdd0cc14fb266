"""RedisLocks against the real Redis: exclusion, release by the holder only, renewal and loss."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from adapters.redis.client import redis_client
from adapters.redis.locks import RedisLockHandle, RedisLocks

KEY = "conversation:42"
FULL_KEY = "mcagent:lock:conversation:42"


@pytest.fixture
def make_locks(client: redis.Redis) -> Iterator[Callable[[int], RedisLocks]]:
    made: list[RedisLocks] = []

    def make(ttl_ms: int) -> RedisLocks:
        made.append(RedisLocks(client, ttl_ms=ttl_ms))
        return made[-1]

    yield make
    for locks in made:
        locks.close()


def _eventually(condition: Callable[[], bool], *, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_only_one_of_many_threads_gets_the_lock(make_locks: Callable[[int], RedisLocks]) -> None:
    locks = make_locks(10_000)
    start = threading.Barrier(20)
    handles: list[RedisLockHandle | None] = []

    def contend() -> None:
        start.wait()
        handles.append(locks.acquire(KEY))

    threads = [threading.Thread(target=contend) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len([handle for handle in handles if handle is not None]) == 1


def test_released_lock_can_be_taken_again(make_locks: Callable[[int], RedisLocks]) -> None:
    locks = make_locks(10_000)
    first = locks.acquire(KEY)
    assert first is not None
    assert locks.is_held(KEY)
    assert locks.acquire(KEY) is None

    first.release()

    assert not locks.is_held(KEY)
    assert locks.acquire(KEY) is not None


def test_release_by_a_stale_handle_leaves_the_new_holders_lock(
    client: redis.Redis, make_locks: Callable[[int], RedisLocks]
) -> None:
    # A long TTL keeps the renewal thread asleep: the stale release itself must refuse to delete.
    stale_holder, new_holder = make_locks(10_000), make_locks(10_000)
    stale = stale_holder.acquire(KEY)
    assert stale is not None
    client.delete(FULL_KEY)  # what expiry does while the first holder is paused
    current = new_holder.acquire(KEY)
    assert current is not None

    stale.release()

    assert client.get(FULL_KEY) == current.token.encode()
    assert not current.lost


def test_renewal_keeps_a_held_lock_alive_past_its_ttl(
    client: redis.Redis, make_locks: Callable[[int], RedisLocks]
) -> None:
    locks = make_locks(300)
    handle = locks.acquire(KEY)
    assert handle is not None

    time.sleep(1.2)

    assert not handle.lost
    assert client.get(FULL_KEY) == handle.token.encode()
    assert make_locks(300).acquire(KEY) is None


def test_lock_expires_when_its_holder_stops_renewing(make_locks: Callable[[int], RedisLocks]) -> None:
    holder = make_locks(300)
    handle = holder.acquire(KEY)
    assert handle is not None

    holder.close()

    other = make_locks(300)
    assert _eventually(lambda: other.acquire(KEY) is not None, within_s=1.0)
    assert handle.lost


def _hold_until_killed(redis_url: str, acquired: threading.Event) -> None:
    locks = RedisLocks(redis_client(redis_url, socket_timeout_s=2), ttl_ms=300)
    assert locks.acquire(KEY) is not None
    acquired.set()
    time.sleep(60)


def test_lock_of_a_killed_process_expires_after_its_ttl(
    redis_url: str, make_locks: Callable[[int], RedisLocks]
) -> None:
    context = multiprocessing.get_context("fork")
    acquired = context.Event()
    holder = context.Process(target=_hold_until_killed, args=(redis_url, acquired), daemon=True)
    holder.start()
    try:
        assert acquired.wait(5)
        locks = make_locks(300)
        time.sleep(0.8)  # well past the TTL: the holder's renewals keep it
        assert locks.acquire(KEY) is None

        assert holder.pid is not None
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(5)

        assert _eventually(lambda: locks.acquire(KEY) is not None, within_s=1.0)
    finally:
        holder.kill()


def test_held_lock_reports_lost_after_redis_is_emptied(
    client: redis.Redis, make_locks: Callable[[int], RedisLocks]
) -> None:
    locks = make_locks(300)
    handle = locks.acquire(KEY)
    assert handle is not None

    # FLUSHDB rather than FLUSHALL: other test sessions use the other databases of this Redis.
    client.flushdb()

    assert _eventually(lambda: handle.lost, within_s=1.0)
    assert client.get(FULL_KEY) is None, "a lost lock must not be recreated by renewal"


def test_lock_is_reported_lost_when_redis_is_unreachable_until_it_expires(
    client: redis.Redis, make_locks: Callable[[int], RedisLocks]
) -> None:
    locks = make_locks(300)
    handle = locks.acquire(KEY)
    assert handle is not None

    # From now on the client's connections are new ones, to a closed port.
    client.connection_pool.connection_kwargs["port"] = 1
    client.connection_pool.disconnect()
    client.connection_pool.reset()

    time.sleep(0.15)
    assert not handle.lost, "one failed renewal is retried, not given up on"
    assert _eventually(lambda: handle.lost, within_s=1.0)


def test_unreachable_redis_means_no_lock_and_nobody_holding_it() -> None:
    locks = RedisLocks(redis_client("redis://127.0.0.1:1/0", socket_timeout_s=0.5), ttl_ms=1_000)

    assert locks.acquire(KEY) is None
    assert not locks.is_held(KEY)


def test_many_held_locks_are_renewed_together_and_only_the_one_taken_over_is_lost(
    client: redis.Redis, make_locks: Callable[[int], RedisLocks]
) -> None:
    locks = make_locks(300)
    handles = [locks.acquire(f"{KEY}-{n}") for n in range(50)]
    assert all(handle is not None for handle in handles)
    held = [handle for handle in handles if handle is not None]
    # Someone else's lock now (its holder's expired, say): the next renewal must not extend it.
    client.set(held[7].key, "someone-else", px=60_000)

    time.sleep(0.8)  # well past the TTL: only the renewals keep them

    assert _eventually(lambda: held[7].lost, within_s=1.0)
    assert client.get(held[7].key) == b"someone-else"
    assert [handle.key for handle in held if handle.lost] == [held[7].key]
    assert all(client.get(handle.key) == handle.token.encode() for handle in held if handle is not held[7])


def test_a_lock_released_while_its_renewal_is_on_the_way_is_not_reported_lost(
    make_locks: Callable[[int], RedisLocks],
) -> None:
    locks = make_locks(30_000)
    handle = locks.acquire(KEY)
    assert handle is not None
    on_the_way = [handle]  # the renewer took its list of held locks...

    handle.release()  # ... the turn ended and let go ...
    locks._renew(on_the_way)  # ... and the renewal finds the key gone

    assert not handle.lost, "a lock its holder released is not a lost lock"

"""Route and balance caches against the real Redis, and their behaviour when Redis is down or hangs."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from adapters.redis.cache import RedisBalanceCache, RedisRouteCache, cache_circuit
from adapters.redis.client import redis_client
from domain.channels import ChannelType
from domain.credits import Credits
from domain.tenancy import Agent, Channel, Route
from tests.support.secrets import TEST_CIPHER

AT = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
ROUTE = Route(
    channel=Channel("pn_123", "usr_1", ChannelType.WHATSAPP, "+15550001", "EAAB-secret-token", "Shop", AT),
    agent=Agent("agt_1", "usr_1", "pn_123", "Sales", "pmpt_abc", "3", AT),
)
CREDITS = Credits(user_id="usr_1", balance=500, reserved=20, updated_at=AT)


@pytest.fixture
def hanging_redis_url() -> Iterator[str]:
    """A port that accepts connections and never answers: every command waits for its timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    listener.close()


def test_route_round_trips_through_redis(client: redis.Redis) -> None:
    cache = RedisRouteCache(client, ttl_s=300, cipher=TEST_CIPHER)

    cache.put(ROUTE)

    assert cache.get("pn_123") == ROUTE
    assert 0 < client.ttl("mcagent:route:pn_123") <= 300


def test_route_without_agent_round_trips(client: redis.Redis) -> None:
    cache = RedisRouteCache(client, ttl_s=300, cipher=TEST_CIPHER)
    unlinked = Route(channel=ROUTE.channel, agent=None)

    cache.put(unlinked)

    assert cache.get("pn_123") == unlinked


def test_route_is_stored_as_readable_json(client: redis.Redis) -> None:
    RedisRouteCache(client, ttl_s=300, cipher=TEST_CIPHER).put(ROUTE)

    stored = client.get("mcagent:route:pn_123")

    assert stored is not None
    assert b'"type": "whatsapp"' in stored
    assert b'"created_at": "2026-03-01T09:30:15.123456+00:00"' in stored


def test_a_route_changed_by_another_process_is_read_as_changed_and_the_same_bytes_are_not_decoded_again(
    client: redis.Redis,
) -> None:
    reader = RedisRouteCache(client, ttl_s=300, cipher=TEST_CIPHER)
    writer = RedisRouteCache(client, ttl_s=300, cipher=TEST_CIPHER)  # another web or worker process
    writer.put(ROUTE)
    first = reader.get("pn_123")
    assert first == ROUTE
    assert reader.get("pn_123") is first, "the same bytes again: the decoded route is reused"

    paused = Route(channel=ROUTE.channel, agent=None)
    writer.put(paused)
    assert reader.get("pn_123") == paused
    writer.invalidate("pn_123")
    assert reader.get("pn_123") is None


def test_invalidated_route_is_a_miss(client: redis.Redis) -> None:
    cache = RedisRouteCache(client, ttl_s=300, cipher=TEST_CIPHER)
    cache.put(ROUTE)

    cache.invalidate("pn_123")

    assert cache.get("pn_123") is None


def test_unknown_route_is_a_miss(client: redis.Redis) -> None:
    assert RedisRouteCache(client, ttl_s=300, cipher=TEST_CIPHER).get("pn_unknown") is None


def test_unreadable_entry_is_a_miss(client: redis.Redis) -> None:
    client.set("mcagent:route:pn_123", b'{"channel": {"phone_number_id": "pn_123"}}')

    assert RedisRouteCache(client, ttl_s=300, cipher=TEST_CIPHER).get("pn_123") is None


def test_balance_round_trips_and_is_invalidated(client: redis.Redis) -> None:
    cache = RedisBalanceCache(client, ttl_s=300)

    cache.put(CREDITS)
    assert cache.get("usr_1") == CREDITS
    assert client.exists("mcagent:balance:usr_1")

    cache.invalidate("usr_1")
    assert cache.get("usr_1") is None


def test_cache_on_a_closed_port_misses_without_raising() -> None:
    client = redis_client("redis://127.0.0.1:1/0", socket_timeout_s=0.5)
    routes, balances = RedisRouteCache(client, ttl_s=300, cipher=TEST_CIPHER), RedisBalanceCache(client, ttl_s=300)

    routes.put(ROUTE)
    balances.put(CREDITS)
    routes.invalidate("pn_123")
    balances.invalidate("usr_1")

    assert routes.get("pn_123") is None
    assert balances.get("usr_1") is None


def test_hanging_redis_costs_a_few_timeouts_then_is_skipped(hanging_redis_url: str) -> None:
    cache = RedisRouteCache(
        redis_client(hanging_redis_url, socket_timeout_s=0.2),
        ttl_s=300,
        cipher=TEST_CIPHER,
        circuit=cache_circuit(failures=3),
    )

    started = time.monotonic()
    results = [cache.get("pn_123") for _ in range(50)]
    elapsed = time.monotonic() - started

    assert results == [None] * 50
    # Three timed-out calls (each with its one retry) trip the breaker; the other 47 return at once.
    assert elapsed < 3 * 2 * 0.2 + 0.5


def test_cache_is_used_again_after_the_breaker_resets(client: redis.Redis, hanging_redis_url: str) -> None:
    circuit = cache_circuit(failures=1, reset_after_s=0.3)
    RedisRouteCache(
        redis_client(hanging_redis_url, socket_timeout_s=0.1), ttl_s=300, cipher=TEST_CIPHER, circuit=circuit
    ).get("pn_123")
    healthy = RedisRouteCache(client, ttl_s=300, cipher=TEST_CIPHER, circuit=circuit)
    healthy.put(ROUTE)
    assert healthy.get("pn_123") is None, "the open breaker skips Redis"

    time.sleep(0.4)
    healthy.put(ROUTE)

    assert healthy.get("pn_123") == ROUTE

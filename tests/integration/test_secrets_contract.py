"""Channel access tokens at rest: the channels repository (in memory and PostgreSQL) and the Redis route
cache give back the clear token, and PostgreSQL and Redis hold only ciphertext that no other key opens."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import psycopg
import pytest
import redis
from attrs import evolve
from psycopg_pool import ConnectionPool
from structlog.testing import capture_logs

from adapters.crypto import PREFIX, FernetTokenCipher, TokenUndecryptable
from adapters.memory.tables import InMemoryStore
from adapters.memory.unit_of_work import InMemoryUnitOfWork
from adapters.postgres.channel_tokens import PostgresChannelTokens
from adapters.postgres.pool import open_pool
from adapters.postgres.unit_of_work import PostgresUnitOfWork
from adapters.redis.cache import RedisBalanceCache, RedisRouteCache
from application.ports.repositories import UnitOfWork
from domain.channels import ChannelType
from domain.credits import Credits
from domain.tenancy import Channel, Route
from tests.support.postgres import NOW, a_channel, a_user, an_agent
from tests.support.secrets import OTHER_TOKEN_KEY, TEST_TOKEN_KEY

TOKEN = "EAAGm0PX4ZCpsBAKZCZA1Oq2H3mHZB9t5zDz4hjuKZBw8gPZAqYxRZAtB1sXfW4ZCZBCZCJiLSZCgK"
A, B = TEST_TOKEN_KEY, OTHER_TOKEN_KEY

UowFactory = Callable[[], UnitOfWork]


def _whatsapp(phone_number_id: str = "pn-1", token: str = TOKEN) -> Channel:
    return evolve(a_channel("user-1", phone_number_id), access_token=token)


def _webchat(phone_number_id: str = "wc-1") -> Channel:
    return evolve(a_channel("user-1", phone_number_id), type=ChannelType.WEBCHAT, access_token="")


@pytest.fixture
def pool(clean_database: str) -> Iterator[ConnectionPool]:
    pool = open_pool(clean_database, size=4, timeout_s=10)
    yield pool
    pool.close()


def _postgres(pool: ConnectionPool, *keys: str) -> UowFactory:
    cipher = FernetTokenCipher(keys)
    return lambda: PostgresUnitOfWork(pool, cipher=cipher)


@pytest.fixture(params=["memory", "postgres"])
def uow_factory(request: pytest.FixtureRequest) -> UowFactory:
    if request.param == "memory":
        store = InMemoryStore()
        return lambda: InMemoryUnitOfWork(store)
    return _postgres(request.getfixturevalue("pool"), A)


def _store(uow_factory: UowFactory, *channels: Channel) -> None:
    with uow_factory() as uow:
        if uow.users.get("user-1") is None:
            uow.users.add(a_user("user-1"))
        for channel in channels:
            uow.channels.add(channel)
        uow.commit()


def _column(database_url: str, phone_number_id: str) -> str:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT access_token FROM phone_numbers WHERE phone_number_id = %s", (phone_number_id,)
        ).fetchone()
    assert row is not None
    stored: str = row[0]
    return stored


def _set_column(database_url: str, phone_number_id: str, stored: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE phone_numbers SET access_token = %s WHERE phone_number_id = %s", (stored, phone_number_id))


# --- the contract: every adapter gives the clear token back ----------------------------------------


def test_a_stored_channel_comes_back_with_its_clear_token_however_it_is_read(uow_factory: UowFactory) -> None:
    _store(uow_factory, _whatsapp(), _webchat())
    with uow_factory() as uow:
        uow.agents.add(an_agent("user-1", "pn-1"))
        uow.commit()

    with uow_factory() as uow:
        got = uow.channels.get("user-1", "pn-1")
        listed = uow.channels.list("user-1")
        route = uow.channels.route("pn-1")

    assert got == _whatsapp()
    assert listed == sorted([_whatsapp(), _webchat()], key=lambda c: c.phone_number_id)
    assert route == Route(channel=_whatsapp(), agent=an_agent("user-1", "pn-1"))


# --- PostgreSQL: ciphertext at rest ------------------------------------------------------------------


def test_postgres_holds_only_ciphertext_that_the_key_opens(pool: ConnectionPool, clean_database: str) -> None:
    _store(_postgres(pool, A), _whatsapp(), _webchat())

    stored = _column(clean_database, "pn-1")

    assert stored.startswith(PREFIX) and TOKEN[:-4] not in stored
    assert FernetTokenCipher([A]).decrypt(stored) == TOKEN
    assert _column(clean_database, "wc-1") == ""


def test_a_token_under_a_key_no_longer_listed_is_a_clear_error_naming_the_channel_not_garbage(
    pool: ConnectionPool,
) -> None:
    _store(_postgres(pool, A), _whatsapp())
    with _postgres(pool, A)() as uow:
        uow.agents.add(an_agent("user-1", "pn-1"))
        uow.commit()

    reads: list[Callable[[UnitOfWork], object]] = [
        lambda uow: uow.channels.get("user-1", "pn-1"),
        lambda uow: uow.channels.list("user-1"),
        lambda uow: uow.channels.route("pn-1"),
    ]
    for read in reads:
        with pytest.raises(TokenUndecryptable) as refused, _postgres(pool, B)() as uow:
            read(uow)
        assert "channel pn-1" in str(refused.value)
        assert "TOKEN_ENCRYPTION_KEYS" in str(refused.value)
        assert TOKEN[:-4] not in str(refused.value)


def test_an_altered_column_is_refused(pool: ConnectionPool, clean_database: str) -> None:
    _store(_postgres(pool, A), _whatsapp())
    stored = _column(clean_database, "pn-1")
    _set_column(clean_database, "pn-1", stored[:-8] + ("AAAA" if stored[-8:-4] != "AAAA" else "BBBB") + stored[-4:])

    with pytest.raises(TokenUndecryptable), _postgres(pool, A)() as uow:
        uow.channels.get("user-1", "pn-1")


def test_a_token_written_in_plain_text_before_encryption_is_still_read(
    pool: ConnectionPool, clean_database: str
) -> None:
    _store(_postgres(pool, A), _whatsapp())
    _set_column(clean_database, "pn-1", TOKEN)

    with capture_logs() as logs, _postgres(pool, A)() as uow:
        got = uow.channels.get("user-1", "pn-1")

    assert got == _whatsapp()
    assert "access_token_stored_in_plain_text" in [entry["event"] for entry in logs]
    assert TOKEN not in repr(logs)


# --- the Redis route cache ----------------------------------------------------------------------------


ROUTE = Route(channel=_whatsapp(), agent=an_agent("user-1", "pn-1"))


def _cache(client: redis.Redis, *keys: str) -> RedisRouteCache:
    return RedisRouteCache(client, ttl_s=300, cipher=FernetTokenCipher(keys))


def test_the_route_cache_holds_only_ciphertext_and_gives_the_clear_token_back(client: redis.Redis) -> None:
    cache = _cache(client, A)

    cache.put(ROUTE)
    raw = client.get("mcagent:route:pn-1")

    assert raw is not None
    assert TOKEN[:-4].encode() not in raw
    assert f'"access_token": "{PREFIX}'.encode() in raw
    assert cache.get("pn-1") == ROUTE


def test_a_cached_route_under_a_key_no_longer_listed_is_a_miss_not_garbage(client: redis.Redis) -> None:
    _cache(client, A).put(ROUTE)

    with capture_logs() as logs:
        got = _cache(client, B).get("pn-1")

    assert got is None
    assert [entry["event"] for entry in logs] == ["cache_entry_unreadable"]
    assert "TOKEN_ENCRYPTION_KEYS" in logs[0]["error"]


def test_a_cached_route_under_an_older_listed_key_is_read(client: redis.Redis) -> None:
    _cache(client, A).put(ROUTE)

    assert _cache(client, B, A).get("pn-1") == ROUTE


def test_a_route_cached_with_a_plain_text_token_before_encryption_is_still_read(client: redis.Redis) -> None:
    _cache(client, A).put(ROUTE)
    raw = client.get("mcagent:route:pn-1")
    assert raw is not None
    legacy = json.loads(raw)
    legacy["channel"]["access_token"] = TOKEN
    client.set("mcagent:route:pn-1", json.dumps(legacy))

    assert _cache(client, A).get("pn-1") == ROUTE


def test_forgetting_every_route_leaves_the_balances(client: redis.Redis) -> None:
    cache = _cache(client, A)
    for n in range(1205):
        cache.put(evolve(ROUTE, channel=_whatsapp(f"pn-{n}")))
    balances = RedisBalanceCache(client, ttl_s=300)
    balances.put(Credits(user_id="user-1", balance=5, reserved=0, updated_at=NOW))

    assert cache.forget_all() == 1205
    assert client.keys("mcagent:route:*") == []
    assert balances.get("user-1") is not None
    assert cache.forget_all() == 0


# --- re-encryption --------------------------------------------------------------------------------


def test_reencryption_moves_every_token_to_the_first_key_and_a_second_run_changes_nothing(
    pool: ConnectionPool, clean_database: str
) -> None:
    channels = [_whatsapp(f"pn-{n}", f"{TOKEN}-{n}") for n in range(7)]
    _store(_postgres(pool, A), *channels, _webchat())
    _set_column(clean_database, "pn-3", f"{TOKEN}-3")  # written before encryption existed

    first = PostgresChannelTokens(pool, cipher=FernetTokenCipher([B, A])).reencrypt_all(batch_size=3)
    second = PostgresChannelTokens(pool, cipher=FernetTokenCipher([B, A])).reencrypt_all(batch_size=3)

    assert (first.reencrypted, first.encrypted, first.current, first.changed_meanwhile, first.unreadable) == (
        6,
        1,
        1,
        0,
        [],
    )
    assert (second.reencrypted, second.encrypted, second.current) == (0, 0, 8)
    with _postgres(pool, B)() as uow:
        assert uow.channels.list("user-1") == sorted([*channels, _webchat()], key=lambda c: c.phone_number_id)


def test_reencryption_names_the_tokens_no_key_opens_and_leaves_them(pool: ConnectionPool, clean_database: str) -> None:
    _store(_postgres(pool, A), _whatsapp("pn-1"), _whatsapp("pn-2"))
    lost = FernetTokenCipher([OTHER_TOKEN_KEY]).encrypt(TOKEN)
    _set_column(clean_database, "pn-2", lost)
    counts = PostgresChannelTokens(pool, cipher=FernetTokenCipher([A])).reencrypt_all()

    assert (counts.current, counts.unreadable) == (1, ["pn-2"])
    assert _column(clean_database, "pn-2") == lost


class _RotatedMeanwhile(FernetTokenCipher):
    """Re-encrypts as usual, but a tenant rotates `phone_number_id`'s token while it does."""

    def __init__(self, keys: list[str], database_url: str, phone_number_id: str, new_stored: str) -> None:
        super().__init__(keys)
        self._rotate = lambda: _set_column(database_url, phone_number_id, new_stored)

    def reencrypt(self, stored: str) -> str | None:
        self._rotate()
        return super().reencrypt(stored)


def test_a_token_rotated_while_reencryption_runs_is_not_overwritten(pool: ConnectionPool, clean_database: str) -> None:
    _store(_postgres(pool, A), _whatsapp("pn-1"))
    rotated = FernetTokenCipher([B]).encrypt("EAAG-the-new-token")

    counts = PostgresChannelTokens(
        pool, cipher=_RotatedMeanwhile([B, A], clean_database, "pn-1", rotated)
    ).reencrypt_all()

    assert (counts.reencrypted, counts.changed_meanwhile) == (0, 1)
    assert _column(clean_database, "pn-1") == rotated

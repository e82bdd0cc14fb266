"""`mcagent reencrypt-tokens`, as an operator rotating the token key runs it: put the new key first, run
the command, drop the old key — and every channel's token still decrypts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis
from attrs import evolve
from psycopg_pool import ConnectionPool

from adapters.crypto import FernetTokenCipher
from adapters.postgres.pool import open_pool
from adapters.postgres.unit_of_work import PostgresUnitOfWork
from adapters.redis.cache import RedisRouteCache
from domain.tenancy import Channel, Route
from tests.e2e.harness import ROOT
from tests.support.postgres import a_channel, a_user, an_agent
from tests.support.secrets import OTHER_TOKEN_KEY, TEST_TOKEN_KEY

KEY_A, KEY_B = TEST_TOKEN_KEY, OTHER_TOKEN_KEY
CHANNELS = [evolve(a_channel("user-1", f"pn-{n}"), access_token=f"EAAG-reencrypt-me-{n:03d}-tail") for n in range(5)]


@pytest.fixture
def pool(clean_database: str) -> Iterator[ConnectionPool]:
    pool = open_pool(clean_database, size=2, timeout_s=10)
    yield pool
    pool.close()


def _reencrypt(database_url: str, redis_url: str, keys: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{name: os.environ[name] for name in ("PATH", "HOME", "LANG", "PYTHONPATH") if name in os.environ},
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "OFFLINE_RESPONDER": "true",
        "WEBHOOK_SECRET": "s",
        "WEBHOOK_VERIFY_TOKEN": "v",
        "ADMIN_API_KEY": "a",
        **({} if keys is None else {"TOKEN_ENCRYPTION_KEYS": keys}),
    }
    return subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "reencrypt-tokens", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _channels(pool: ConnectionPool, *keys: str) -> list[Channel]:
    with PostgresUnitOfWork(pool, cipher=FernetTokenCipher(keys)) as uow:
        return uow.channels.list("user-1")


def test_a_key_is_rotated_by_putting_it_first_running_the_command_and_dropping_the_old_one(
    pool: ConnectionPool, clean_database: str, redis_url: str
) -> None:
    under_a = FernetTokenCipher([KEY_A])
    with PostgresUnitOfWork(pool, cipher=under_a) as uow:
        uow.users.add(a_user("user-1"))
        for channel in CHANNELS:
            uow.channels.add(channel)
        uow.agents.add(an_agent("user-1", "pn-0"))
        uow.commit()
    with pool.connection() as conn:  # one token stored before encryption existed
        conn.execute(
            "UPDATE phone_numbers SET access_token = %s WHERE phone_number_id = 'pn-4'", (CHANNELS[4].access_token,)
        )
    client = redis.Redis.from_url(redis_url)
    RedisRouteCache(client, ttl_s=300, cipher=under_a).put(Route(channel=CHANNELS[0], agent=None))

    rotated = _reencrypt(clean_database, redis_url, f"{KEY_B},{KEY_A}", "--batch-size", "2")

    assert rotated.returncode == 0, rotated.stderr
    assert "4 re-encrypted from an older key, 1 encrypted from plain text, 0 already current" in rotated.stdout
    assert "route cache: 1 cached route(s) dropped" in rotated.stdout
    assert client.keys("mcagent:route:*") == []
    assert _channels(pool, KEY_B) == sorted(CHANNELS, key=lambda c: c.phone_number_id)

    again = _reencrypt(clean_database, redis_url, KEY_B)

    assert again.returncode == 0, again.stderr
    assert "0 re-encrypted from an older key, 0 encrypted from plain text, 5 already current" in again.stdout
    for output in (rotated.stdout + rotated.stderr, again.stdout + again.stderr):
        assert KEY_A not in output and KEY_B not in output
        assert not any(channel.access_token in output for channel in CHANNELS)


def test_tokens_no_listed_key_opens_are_named_and_left_and_the_command_fails(
    pool: ConnectionPool, clean_database: str, redis_url: str
) -> None:
    with PostgresUnitOfWork(pool, cipher=FernetTokenCipher([KEY_B])) as uow:
        uow.users.add(a_user("user-1"))
        uow.channels.add(CHANNELS[0])
        uow.commit()

    answer = _reencrypt(clean_database, redis_url, KEY_A)

    assert answer.returncode == 1
    assert "1 unreadable" in answer.stdout
    assert "pn-0" in answer.stderr and "TOKEN_ENCRYPTION_KEYS" in answer.stderr
    assert _channels(pool, KEY_B) == [CHANNELS[0]]


def test_without_keys_the_command_stops_before_touching_anything(clean_database: str, redis_url: str) -> None:
    answer = _reencrypt(clean_database, redis_url, None)

    assert answer.returncode == 2
    assert "TOKEN_ENCRYPTION_KEYS: required" in answer.stderr
    assert "Traceback" not in answer.stderr

"""Fixtures shared by every test layer.

Integration and end-to-end tests use the real PostgreSQL and Redis of the machine. When one is not
reachable the test fails with a message saying so: a missing service must never pass as a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

# Property-based tests: "ci" (the default) runs a fixed set of examples, the same on every run and
# machine, so a failure is reproducible and CI does not flake; HYPOTHESIS_PROFILE=explore searches
# afresh, far longer, for a developer hunting bugs.
settings.register_profile(
    "ci",
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "explore",
    max_examples=3_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

PG_ADMIN_URL = os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _require(what: str, error: Exception) -> None:
    pytest.fail(
        f"{what} is needed by this test and is not reachable ({error}). Start it (see README, 'Testing') "
        "or point TEST_DATABASE_ADMIN_URL / TEST_REDIS_URL at one.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database with every migration applied, dropped at the end of the session."""
    import psycopg

    from adapters.postgres.migrations import apply_migrations

    name = f"mcagent_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        _require("PostgreSQL", error)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    apply_migrations(url)
    yield url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def clean_database(database_url: str) -> str:
    """The session database with every table emptied (migrations table kept)."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
            )
        ]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
    return database_url


@pytest.fixture
def redis_url() -> str:
    """The test Redis database, emptied before the test."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=3)
    try:
        client.flushdb()
    except redis.RedisError as error:
        _require("Redis", error)
    finally:
        client.close()
    return REDIS_TEST_URL


@pytest.fixture(autouse=True)
def _responses_checked_against_the_openapi_document(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Flask test client of every test checks each response against `GET /openapi.json`."""
    from flask import Flask

    from tests.support.contract import ContractCheckedClient

    monkeypatch.setattr(Flask, "test_client_class", ContractCheckedClient)

"""The benchmark's own database helper, on the machine's PostgreSQL: its end-of-run figures (how many of
the accepted messages are durable) come from queries with `%` in their patterns, and the turns of the
measured window from the `turns` table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.run import turns_started
from bench.system import Database
from entrypoints.container import build_container
from entrypoints.settings import Settings
from tests.conftest import PG_ADMIN_URL
from tests.support.inprocess import InProcessService
from tests.support.secrets import TEST_TOKEN_KEY


def test_a_query_without_parameters_takes_a_like_pattern_and_one_with_them_binds_them() -> None:
    database = Database(PG_ADMIN_URL)
    database.create()
    try:
        assert database.query("SELECT count(*) FROM messages WHERE text LIKE 'c%'") == [(0,)]
        assert database.query("SELECT %s LIKE 'c%%'", ("cat",)) == [(True,)]
    finally:
        database.drop()


def test_the_turns_of_the_measured_window_are_those_started_within_it(clean_database: str, redis_url: str) -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": clean_database,
            "REDIS_URL": redis_url,
            "WEBHOOK_SECRET": "bench-webhook-secret",
            "WEBHOOK_VERIFY_TOKEN": "bench-verify-token",
            "ADMIN_API_KEY": "bench-admin-key",
            "OFFLINE_RESPONDER": "true",
            "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEY,
        }
    )
    container = build_container(settings)
    container.init_resources()
    try:
        service = InProcessService(container)
        before = datetime.now(UTC)
        service.deliver_valid_text()
        service.drain()
        after = datetime.now(UTC)
    finally:
        container.shutdown_resources()
    database = Database(PG_ADMIN_URL)
    database.url = clean_database

    assert turns_started(database, before, after) == 1
    assert turns_started(database, after, after + timedelta(hours=1)) == 0

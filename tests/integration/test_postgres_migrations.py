"""The migration runner against a real, empty PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import psycopg
import pytest

from adapters.postgres.migrations import apply_migrations, pending_migrations


def _all_versions() -> list[str]:
    return sorted(
        entry.name.removesuffix(".sql")
        for entry in resources.files("migrations").iterdir()
        if entry.name.endswith(".sql")
    )


@pytest.fixture
def empty_database(database_url: str) -> Iterator[str]:
    """A database of its own, with nothing in it, dropped afterwards."""
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    name = f"mcagent_migrate_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield database_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_every_migration_is_pending_on_an_empty_database(empty_database: str) -> None:
    assert pending_migrations(empty_database) == _all_versions()


def test_first_run_applies_every_migration_in_name_order_and_records_it(empty_database: str) -> None:
    assert apply_migrations(empty_database) == _all_versions()

    with psycopg.connect(empty_database) as conn:
        recorded = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert recorded == _all_versions()
    assert {"users", "phone_numbers", "agents", "conversations", "messages", "turns", "credits"} <= tables
    assert pending_migrations(empty_database) == []


def test_second_run_applies_nothing(empty_database: str) -> None:
    apply_migrations(empty_database)

    assert apply_migrations(empty_database) == []


def test_concurrent_runs_apply_each_migration_exactly_once(empty_database: str) -> None:
    with ThreadPoolExecutor(max_workers=4) as executor:
        results = list(executor.map(lambda _: apply_migrations(empty_database), range(4)))

    applied = [version for result in results for version in result]
    assert sorted(applied) == _all_versions()
    assert sum(1 for result in results if result) == 1
    with psycopg.connect(empty_database) as conn:
        count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert count == (len(_all_versions()),)


def test_session_database_is_fully_migrated(database_url: str) -> None:
    assert pending_migrations(database_url) == []

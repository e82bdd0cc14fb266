"""The migration runner against a real, empty PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import psycopg
import pytest

from adapters.postgres.migrations import (
    DatabaseUnreachable,
    SchemaNotCurrent,
    apply_migrations,
    pending_migrations,
    verify_schema,
)
from tests.support.processes import free_port

#: A migration no release of this code ships: what a newer release leaves behind.
FUTURE_MIGRATION = "9999_from_a_newer_release"


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


def test_a_migrated_database_is_at_this_releases_schema(database_url: str) -> None:
    verify_schema(database_url)


def test_an_empty_database_is_refused_naming_every_missing_migration_and_mcagent_migrate(
    empty_database: str,
) -> None:
    with pytest.raises(SchemaNotCurrent) as caught:
        verify_schema(empty_database)

    assert caught.value.missing == _all_versions()
    assert caught.value.unknown == []
    message = str(caught.value)
    assert "Run `mcagent migrate`" in message
    assert all(version in message for version in _all_versions())
    assert empty_database.rsplit("/", 1)[1] in message


def test_a_database_an_older_release_migrated_is_refused_naming_the_migration_it_lacks(empty_database: str) -> None:
    apply_migrations(empty_database)
    newest = _all_versions()[-1]
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version = %s", (newest,))

    with pytest.raises(SchemaNotCurrent) as caught:
        verify_schema(empty_database)

    assert caught.value.missing == [newest]
    assert "Run `mcagent migrate`" in str(caught.value)


def test_a_database_a_newer_release_migrated_is_refused_naming_the_migration_this_release_lacks(
    empty_database: str,
) -> None:
    apply_migrations(empty_database)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (FUTURE_MIGRATION,))

    with pytest.raises(SchemaNotCurrent) as caught:
        verify_schema(empty_database)

    assert caught.value.unknown == [FUTURE_MIGRATION]
    message = str(caught.value)
    assert "newer release" in message and FUTURE_MIGRATION in message
    assert "Deploy the release that migrated it" in message
    assert "mcagent migrate" not in message


def test_migrate_changes_nothing_on_a_database_a_newer_release_migrated(empty_database: str) -> None:
    apply_migrations(empty_database)
    newest = _all_versions()[-1]
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version = %s", (newest,))
        conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (FUTURE_MIGRATION,))

    with pytest.raises(SchemaNotCurrent, match="newer release"):
        apply_migrations(empty_database)

    assert pending_migrations(empty_database) == [newest]


def test_an_unreachable_database_is_no_verdict_on_its_schema() -> None:
    with pytest.raises(DatabaseUnreachable):
        verify_schema(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")

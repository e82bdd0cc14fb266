"""The migration runner: applies the SQL files of the `migrations` package in name order, once each.

Each file runs in its own transaction together with its row in `schema_migrations`, so a failing
file leaves neither half a schema change nor a record of it. A session advisory lock makes
concurrent runs (several containers starting at once) queue up instead of racing: the second
runner finds everything applied and does nothing.
"""

from __future__ import annotations

from importlib import resources

import psycopg

#: Key of the advisory lock held while migrating (an arbitrary constant; only this runner uses it).
_LOCK_KEY = 0x6D6361_6D6967  # "mca" "mig"

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


def _migration_files() -> list[tuple[str, str]]:
    """(version, SQL) of every migration file, in name order; the version is the file name without `.sql`."""
    files = sorted(
        (entry for entry in resources.files("migrations").iterdir() if entry.name.endswith(".sql")),
        key=lambda entry: entry.name,
    )
    return [(entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8")) for entry in files]


def _applied(conn: psycopg.Connection) -> set[str]:
    if conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,):
        return set()
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def pending_migrations(database_url: str) -> list[str]:
    """The versions not applied yet, in the order they would be applied."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        applied = _applied(conn)
    return [version for version, _ in _migration_files() if version not in applied]


def apply_migrations(database_url: str) -> list[str]:
    """Apply every pending migration; return the versions applied by this call (empty when up to date)."""
    applied_now: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(_CREATE_TABLE)
            applied = _applied(conn)
            for version, sql in _migration_files():
                if version in applied:
                    continue
                with conn.transaction():
                    # No parameters: psycopg sends the file as one simple query, several statements allowed.
                    conn.execute(sql.encode())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                applied_now.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now

"""The migration runner: applies the SQL files of the `migrations` package in name order, once each.

Each file runs in its own transaction together with its row in `schema_migrations`, so a failing
file leaves neither half a schema change nor a record of it. A session advisory lock makes
concurrent runs (several containers starting at once) queue up instead of racing: the second
runner finds everything applied and does nothing.

`verify_schema` is the start-up check of the web and worker processes: the code of a release runs
only on a database holding exactly that release's migrations.
"""

from __future__ import annotations

from importlib import resources

import psycopg
from psycopg.conninfo import conninfo_to_dict

#: Key of the advisory lock held while migrating (an arbitrary constant; only this runner uses it).
_LOCK_KEY = 0x6D6361_6D6967  # "mca" "mig"

#: How long the start-up check waits for PostgreSQL to accept the connection.
_CONNECT_TIMEOUT_S = 5

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


class DatabaseUnreachable(Exception):
    """The schema could not be checked: PostgreSQL did not answer."""


class SchemaNotCurrent(Exception):
    """The database does not hold exactly the migrations this release ships."""

    def __init__(self, database: str, *, missing: list[str], unknown: list[str]) -> None:
        self.missing = missing
        self.unknown = unknown
        if unknown:
            # `mcagent migrate` would not help: it only adds migrations, and these are a later release's.
            text = (
                f"database {database!r} was migrated by a newer release: it holds migration(s) this release "
                f"does not ship ({', '.join(unknown)}). Deploy the release that migrated it (or a later one) "
                "instead of this one."
            )
        else:
            text = (
                f"database {database!r} is not at this release's schema: {len(missing)} migration(s) not "
                f"applied ({', '.join(missing)}). Run `mcagent migrate` with the same DATABASE_URL, then start "
                "again."
            )
        super().__init__(text)


def verify_schema(database_url: str) -> None:
    """Return when the database holds exactly this release's migrations.

    Raises SchemaNotCurrent when some are missing or it holds some this release does not ship, and
    DatabaseUnreachable when PostgreSQL cannot be reached (no verdict either way).
    """
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S) as conn:
            applied = _applied(conn)
    except psycopg.OperationalError as error:
        raise DatabaseUnreachable(str(error).strip()) from error
    shipped = [version for version, _ in _migration_files()]
    missing = [version for version in shipped if version not in applied]
    unknown = sorted(applied - set(shipped))
    if missing or unknown:
        raise SchemaNotCurrent(_database_name(database_url), missing=missing, unknown=unknown)


def _database_name(database_url: str) -> str:
    """The database's name for a message: never the URL, which may hold a password."""
    return str(conninfo_to_dict(database_url).get("dbname") or "?")


def pending_migrations(database_url: str) -> list[str]:
    """The versions not applied yet, in the order they would be applied."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        applied = _applied(conn)
    return [version for version, _ in _migration_files() if version not in applied]


def apply_migrations(database_url: str) -> list[str]:
    """Apply every pending migration; return the versions applied by this call (empty when up to date).

    Raises SchemaNotCurrent, applying nothing, on a database a newer release has migrated: an older
    release's migrations are no way to bring it in line with this release's code.
    """
    applied_now: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(_CREATE_TABLE)
            applied = _applied(conn)
            files = _migration_files()
            unknown = sorted(applied - {version for version, _ in files})
            if unknown:
                raise SchemaNotCurrent(_database_name(database_url), missing=[], unknown=unknown)
            for version, sql in files:
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

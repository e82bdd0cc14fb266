"""The PostgreSQL connection pool, opened explicitly by the composition root (never at import)."""

from __future__ import annotations

from psycopg import Connection
from psycopg_pool import ConnectionPool

#: Connections kept open while idle; the rest are opened on demand up to `size`.
_MIN_IDLE = 2


def _configure(conn: Connection) -> None:
    # Every timestamptz comes back as an aware datetime in UTC, whatever the server's default zone.
    conn.execute("SET TIME ZONE 'UTC'")
    conn.commit()


def open_pool(database_url: str, size: int, timeout_s: float) -> ConnectionPool:
    """Open a pool of at most `size` connections; a checkout waits at most `timeout_s` seconds.

    psycopg-pool runs background threads, so call this after the web server forks its workers.
    Connections are checked on checkout, so a restarted PostgreSQL costs one reconnect instead of
    one failed request per stale connection.
    """
    return ConnectionPool(
        database_url,
        min_size=min(_MIN_IDLE, size),
        max_size=size,
        timeout=timeout_s,
        configure=_configure,
        check=ConnectionPool.check_connection,
        name="mcagent",
        open=True,
    )

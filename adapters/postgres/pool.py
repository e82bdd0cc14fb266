"""The PostgreSQL connection pool, opened explicitly by the composition root (never at import)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Self

import psycopg
from psycopg import Connection, Cursor
from psycopg_pool import ConnectionPool, PoolTimeout

from adapters.io_counts import IoCounts

#: Connections kept open while idle; the rest are opened on demand up to `size`.
_MIN_IDLE = 2


def _configure(conn: Connection) -> None:
    # Every timestamptz comes back as an aware datetime in UTC, whatever the server's default zone.
    conn.execute("SET TIME ZONE 'UTC'")
    conn.commit()


def counting_cursor_class(io_counts: IoCounts) -> type[Cursor[Any]]:
    """Cursors that count each statement they run (IO_COUNTS).

    `Connection.execute` runs on such a cursor too, so every statement the adapters send is counted,
    and `_configure`'s `SET TIME ZONE` once per new connection. The BEGIN and COMMIT or ROLLBACK that
    psycopg sends around a transaction are not statements of ours and are not counted.
    """

    class CountingCursor(Cursor[Any]):
        def execute(self, *args: Any, **kwargs: Any) -> Self:
            io_counts.pg_statements()
            return super().execute(*args, **kwargs)

        def executemany(self, query: Any, params_seq: Iterable[Any], **kwargs: Any) -> None:
            # The statement runs once per set of parameters.
            sets = list(params_seq)
            io_counts.pg_statements(len(sets))
            super().executemany(query, sets, **kwargs)

    return CountingCursor


def open_pool(database_url: str, size: int, timeout_s: float, *, io_counts: IoCounts | None = None) -> ConnectionPool:
    """Open a pool of at most `size` connections; a checkout waits at most `timeout_s` seconds.

    psycopg-pool runs background threads, so call this after the web server forks its workers.
    Connections are not checked on checkout: that would be one more round trip for every statement
    the pipeline runs. A connection found broken is discarded when it is given
    back, so after a PostgreSQL restart each stale connection fails one transaction, which the
    callers already survive (the webhook answers 503, a job is picked up again by the sweep), and
    connections idle for `max_idle` are replaced by the pool anyway. With `io_counts` the connections'
    cursors count their statements there (IO_COUNTS).
    """
    return ConnectionPool(
        database_url,
        min_size=min(_MIN_IDLE, size),
        max_size=size,
        timeout=timeout_s,
        configure=_configure,
        kwargs=None if io_counts is None else {"cursor_factory": counting_cursor_class(io_counts)},
        name="mcagent",
        open=True,
    )


def reachable(pool: ConnectionPool, timeout_s: float = 2.0) -> bool:
    """Whether a pooled connection answers a trivial query within `timeout_s`."""
    try:
        with pool.connection(timeout=timeout_s) as conn:
            conn.execute("SELECT 1")
    except (PoolTimeout, psycopg.Error):
        return False
    return True

"""What the Postgres adapters share: the connection they run on and the mapping of database errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from application.ports.repositories import StorageUnavailable
from domain.errors import Conflict

#: Gives the connection of the unit of work's open transaction (raises when the unit of work is not entered).
ConnectionSource = Callable[[], psycopg.Connection[Any]]


class PostgresRepository:
    def __init__(self, connection: ConnectionSource) -> None:
        self._connection = connection

    def _cursor(self) -> psycopg.Cursor[DictRow]:
        return self._connection().cursor(row_factory=dict_row)


@contextmanager
def checked_out(pool: ConnectionPool) -> Iterator[psycopg.Connection[Any]]:
    """A pooled connection for the length of the block; the port's own error when the database is away."""
    try:
        conn = pool.getconn()
    except PoolTimeout as error:
        raise StorageUnavailable(f"no database connection became available: {error}") from None
    try:
        yield conn
    except errors.ProgramLimitExceeded:
        # psycopg counts it an OperationalError, but a value too large for an index is the data's
        # problem: "try again later" would have Meta redeliver the same value for days.
        raise
    except psycopg.OperationalError as error:
        # Connection-level failures (server gone, network): callers such as the webhook answer
        # "try again later" instead of a generic failure.
        raise StorageUnavailable(f"the database connection failed: {error}") from error
    finally:
        # The pool discards a broken connection and replaces it.
        pool.putconn(conn)


class PostgresStore:
    """Base of the pipeline's stores, whose every call is one atomic change: each statement runs on its
    own (autocommit), without BEGIN/COMMIT round trips, holding row locks only while it runs. A call
    that needs more than one statement to be atomic opens a transaction of its own."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    @contextmanager
    def _autocommit(self) -> Iterator[psycopg.Cursor[DictRow]]:
        with checked_out(self._pool) as conn:
            conn.autocommit = True  # a client-side switch while idle: no round trip
            try:
                yield conn.cursor(row_factory=dict_row)
            finally:
                if not conn.broken:
                    conn.autocommit = False  # the pool's connections stay transactional for units of work


@contextmanager
def conflicts(messages: Mapping[str, tuple[str, str]]) -> Iterator[None]:
    """Turn a unique violation of a named constraint into `Conflict(message, field=field)`.

    `messages` maps constraint (or unique index) names to (message, field). Violations of other
    constraints are bugs and propagate unchanged.
    """
    try:
        yield
    except errors.UniqueViolation as error:
        known = messages.get(error.diag.constraint_name or "")
        if known is None:
            raise
        message, field = known
        raise Conflict(message, field=field) from error

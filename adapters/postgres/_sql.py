"""What the Postgres repositories share: the connection they run on and the mapping of database errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors
from psycopg.rows import DictRow, dict_row

from domain.errors import Conflict

#: Gives the connection of the unit of work's open transaction (raises when the unit of work is not entered).
ConnectionSource = Callable[[], psycopg.Connection[Any]]


class PostgresRepository:
    def __init__(self, connection: ConnectionSource) -> None:
        self._connection = connection

    def _cursor(self) -> psycopg.Cursor[DictRow]:
        return self._connection().cursor(row_factory=dict_row)


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

"""Credits and their ledger in PostgreSQL.

A `CreditMovement` (decided by the domain) is applied by one statement that adds its figures to
the account and writes its ledger line from the result, so the ledger's `balance_after` is exact
and concurrent movements add up. The `credits_never_negative` constraint is the last guard: a
movement that would break it (two turns holding the last credit at once) fails as a whole, and
`InsufficientCredits` says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, LiteralString

from psycopg import errors

from adapters.postgres._sql import PostgresRepository
from adapters.postgres.rows import entity
from domain.credits import CreditMovement, Credits, LedgerEntry
from domain.errors import InsufficientCredits

LEDGER_COLUMNS = "entry_id, user_id, kind, amount, balance_after, reason, turn_id, created_at, extraction_id"

#: `updated_at` of an account that was never credited (the port answers a zero balance, not None).
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def move_credits(gate: LiteralString | None = None) -> LiteralString:
    """CTEs that apply the movement of `movement_params` — and, with `gate`, only when the CTE of that
    name returned a row: the movement is part of a change that may not apply. `ledgered` is its ledger
    line, when it has one.

    The account is updated in place; one that does not exist yet is opened by the movement (a first
    top-up). A movement that would leave it negative (a hold raced for the last credit) breaks the
    constraint, and the whole statement with it.
    """
    source: LiteralString = f" FROM (SELECT 1 FROM {gate} LIMIT 1) AS gate" if gate is not None else ""
    return f"""
    moved AS (
        UPDATE credits SET balance = credits.balance + %(m_balance)s, reserved = credits.reserved + %(m_reserved)s,
                           updated_at = %(now)s{source}
        WHERE credits.user_id = %(m_user)s
        RETURNING credits.user_id, credits.balance
    ), opened AS (
        INSERT INTO credits AS c (user_id, balance, reserved, updated_at)
        SELECT %(m_user)s, %(m_balance)s, %(m_reserved)s, %(now)s{source}
        WHERE NOT EXISTS (SELECT 1 FROM moved)
        ON CONFLICT (user_id) DO UPDATE
        SET balance = c.balance + excluded.balance, reserved = c.reserved + excluded.reserved,
            updated_at = excluded.updated_at
        RETURNING c.user_id, c.balance
    ), ledgered AS (
        INSERT INTO credit_ledger (
            user_id, kind, amount, balance_after, reason, turn_id, extraction_id, idempotency_key, created_at)
        SELECT user_id, %(m_kind)s, %(m_balance)s, balance, %(m_reason)s, %(m_turn)s, %(m_extraction)s, %(m_key)s,
               %(now)s
        FROM (SELECT * FROM moved UNION ALL SELECT * FROM opened) AS account
        WHERE %(m_kind)s::text IS NOT NULL
        RETURNING {LEDGER_COLUMNS}
    )"""


def movement_params(movement: CreditMovement, *, idempotency_key: str | None = None) -> dict[str, Any]:
    return {
        "m_user": movement.user_id,
        "m_balance": movement.balance,
        "m_reserved": movement.reserved,
        "m_kind": None if movement.ledger is None else movement.ledger.value,
        "m_reason": movement.reason,
        "m_turn": movement.turn_id,
        "m_extraction": movement.extraction_id,
        "m_key": idempotency_key,
    }


@contextmanager
def refused_when_negative() -> Iterator[None]:
    try:
        yield
    except errors.CheckViolation as error:
        if error.diag.constraint_name != "credits_never_negative":
            raise
        raise InsufficientCredits("the credits changed meanwhile: this movement would leave them negative") from error


class PostgresCreditsRepository(PostgresRepository):
    def get(self, user_id: str) -> Credits:
        row = (
            self._cursor()
            .execute("SELECT user_id, balance, reserved, updated_at FROM credits WHERE user_id = %s", (user_id,))
            .fetchone()
        )
        return Credits.none(user_id, NEVER) if row is None else entity(row, Credits)

    def record(self, movement: CreditMovement, now: datetime, *, idempotency_key: str | None = None) -> LedgerEntry:
        if movement.ledger is None:
            raise ValueError("only a movement of the balance is recorded in the ledger")
        params = {**movement_params(movement, idempotency_key=idempotency_key), "now": now}
        change = "WITH" + move_credits() + " SELECT * FROM ledgered"
        if idempotency_key is None:
            with refused_when_negative():
                row = self._cursor().execute(change, params).fetchone()
            assert row is not None
            return entity(row, LedgerEntry)
        existing = self._by_key(movement.user_id, idempotency_key)
        if existing is not None:
            return existing
        try:
            # A savepoint, not a transaction of its own (the lookup above opened the unit of work's):
            # a concurrent twin's unique violation then leaves the unit of work usable.
            with self._connection().transaction(), refused_when_negative():
                row = self._cursor().execute(change, params).fetchone()
        except errors.UniqueViolation:
            twin = self._by_key(movement.user_id, idempotency_key)
            if twin is None:
                raise
            return twin
        assert row is not None
        return entity(row, LedgerEntry)

    def ledger(self, user_id: str, limit: int, *, before: int | None = None) -> list[LedgerEntry]:
        rows = self._cursor().execute(
            f"SELECT {LEDGER_COLUMNS} FROM credit_ledger"
            " WHERE user_id = %(user_id)s AND (%(before)s::bigint IS NULL OR entry_id < %(before)s)"
            " ORDER BY entry_id DESC LIMIT %(limit)s",
            {"user_id": user_id, "before": before, "limit": limit},
        )
        return [entity(row, LedgerEntry) for row in rows]

    def _by_key(self, user_id: str, key: str) -> LedgerEntry | None:
        row = (
            self._cursor()
            .execute(
                f"SELECT {LEDGER_COLUMNS} FROM credit_ledger WHERE user_id = %s AND idempotency_key = %s",
                (user_id, key),
            )
            .fetchone()
        )
        return None if row is None else entity(row, LedgerEntry)

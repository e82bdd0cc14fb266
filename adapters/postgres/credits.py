"""Credits and their ledger in PostgreSQL.

Every change of a balance is one statement that updates `credits` and writes its ledger row
together (a data-modifying CTE), so the ledger's `balance_after` is exact. Holds (`reserve`) are a
single conditional UPDATE: PostgreSQL re-checks the condition on the latest row version after
waiting for a concurrent writer, so concurrent holds can never exceed the balance.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, LiteralString

from psycopg import errors

from adapters.postgres._sql import PostgresRepository
from domain.credits import Credits, LedgerEntry, LedgerKind
from domain.errors import Conflict

_LEDGER_COLUMNS = "entry_id, user_id, kind, amount, balance_after, reason, turn_id, created_at"

#: `updated_at` of an account that was never credited (the contract answers a zero balance, not None).
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def _entry(row: dict[str, Any]) -> LedgerEntry:
    return LedgerEntry(
        entry_id=row["entry_id"],
        user_id=row["user_id"],
        kind=LedgerKind(row["kind"]),
        amount=row["amount"],
        balance_after=row["balance_after"],
        reason=row["reason"],
        turn_id=row["turn_id"],
        created_at=row["created_at"],
    )


class PostgresCreditsRepository(PostgresRepository):
    def get(self, user_id: str) -> Credits:
        row = (
            self._cursor()
            .execute("SELECT balance, reserved, updated_at FROM credits WHERE user_id = %s", (user_id,))
            .fetchone()
        )
        if row is None:
            return Credits(user_id=user_id, balance=0, reserved=0, updated_at=_NEVER)
        return Credits(user_id=user_id, balance=row["balance"], reserved=row["reserved"], updated_at=row["updated_at"])

    def top_up(
        self, user_id: str, amount: int, reason: str | None, idempotency_key: str | None, now: datetime
    ) -> LedgerEntry:
        change = f"""
            WITH account AS (
                INSERT INTO credits AS c (user_id, balance, reserved, updated_at)
                VALUES (%(user_id)s, %(amount)s, 0, %(now)s)
                ON CONFLICT (user_id) DO UPDATE
                SET balance = c.balance + excluded.balance, updated_at = excluded.updated_at
                RETURNING balance
            )
            INSERT INTO credit_ledger (user_id, kind, amount, balance_after, reason, idempotency_key, created_at)
            SELECT %(user_id)s, 'top_up', %(amount)s, balance, %(reason)s, %(key)s, %(now)s FROM account
            RETURNING {_LEDGER_COLUMNS}
        """
        params = {"user_id": user_id, "amount": amount, "reason": reason, "key": idempotency_key, "now": now}
        if idempotency_key is None:
            return self._change(change, params)
        lookup = (
            f"SELECT {_LEDGER_COLUMNS} FROM credit_ledger WHERE user_id = %(user_id)s AND idempotency_key = %(key)s"
        )
        return self._change_once(lookup, change, params)

    def reserve(self, user_id: str, amount: int, now: datetime) -> bool:
        cursor = self._cursor().execute(
            """
            UPDATE credits SET reserved = reserved + %(amount)s, updated_at = %(now)s
            WHERE user_id = %(user_id)s AND balance - reserved >= %(amount)s
            """,
            {"user_id": user_id, "amount": amount, "now": now},
        )
        return cursor.rowcount == 1

    def release(self, user_id: str, amount: int, now: datetime) -> None:
        try:
            self._cursor().execute(
                "UPDATE credits SET reserved = reserved - %s, updated_at = %s WHERE user_id = %s",
                (amount, now, user_id),
            )
        except errors.CheckViolation as error:
            raise Conflict(f"cannot release {amount} credits: less than that is held") from error

    def charge(self, user_id: str, amount: int, turn_id: int, now: datetime) -> LedgerEntry:
        change = f"""
            WITH account AS (
                UPDATE credits
                SET balance = balance - %(amount)s, reserved = reserved - %(amount)s, updated_at = %(now)s
                WHERE user_id = %(user_id)s
                RETURNING balance
            )
            INSERT INTO credit_ledger (user_id, kind, amount, balance_after, reason, turn_id, created_at)
            SELECT %(user_id)s, 'charge', -%(amount)s, balance, 'ai_turn', %(turn_id)s, %(now)s FROM account
            RETURNING {_LEDGER_COLUMNS}
        """
        lookup = f"SELECT {_LEDGER_COLUMNS} FROM credit_ledger WHERE turn_id = %(turn_id)s AND kind = 'charge'"
        params = {"user_id": user_id, "amount": amount, "turn_id": turn_id, "now": now}
        try:
            return self._change_once(lookup, change, params)
        except errors.CheckViolation as error:
            raise Conflict(f"cannot charge {amount} credits for turn {turn_id}: less than that is held") from error

    def ledger(self, user_id: str, limit: int) -> list[LedgerEntry]:
        rows = self._cursor().execute(
            f"SELECT {_LEDGER_COLUMNS} FROM credit_ledger WHERE user_id = %s ORDER BY entry_id DESC LIMIT %s",
            (user_id, limit),
        )
        return [_entry(row) for row in rows]

    def _change(self, change: LiteralString, params: dict[str, Any]) -> LedgerEntry:
        row = self._cursor().execute(change, params).fetchone()
        if row is None:
            raise Conflict(f"user {params['user_id']} has no credits account")
        return _entry(row)

    def _change_once(self, lookup: LiteralString, change: LiteralString, params: dict[str, Any]) -> LedgerEntry:
        """Apply `change` unless `lookup` finds its ledger entry already; either way return that entry.

        A concurrent twin (same idempotency key, same turn) can pass the lookup too; the ledger's
        unique index then rejects the second statement as a whole, balance update included, and the
        savepoint keeps the unit of work's transaction usable so the twin's entry can be returned.
        """
        existing = self._cursor().execute(lookup, params).fetchone()
        if existing is not None:
            return _entry(existing)
        try:
            # A savepoint, not a new transaction: the lookup above has opened the unit of work's transaction.
            with self._connection().transaction():
                return self._change(change, params)
        except errors.UniqueViolation:
            twin = self._cursor().execute(lookup, params).fetchone()
            if twin is None:
                raise
            return _entry(twin)

"""Credits and their ledger in memory."""

from __future__ import annotations

from datetime import datetime

from adapters.memory.repository import InMemoryRepository
from adapters.memory.tables import NEVER
from domain.credits import CreditMovement, Credits, LedgerEntry


class InMemoryCreditsRepository(InMemoryRepository):
    def get(self, user_id: str) -> Credits:
        return self.t.credits.get(user_id) or Credits.none(user_id, NEVER)

    def record(self, movement: CreditMovement, now: datetime, *, idempotency_key: str | None = None) -> LedgerEntry:
        if movement.ledger is None:
            raise ValueError("only a movement of the balance is recorded in the ledger")
        if idempotency_key is not None and (movement.user_id, idempotency_key) in self.t.idempotency:
            return self.t.ledger[self.t.idempotency[(movement.user_id, idempotency_key)]]
        entry = self.t.move_credits(movement, now)
        assert entry is not None
        if idempotency_key is not None:
            self.t.idempotency[(movement.user_id, idempotency_key)] = entry.entry_id
        return entry

    def ledger(self, user_id: str, limit: int, *, before: int | None = None) -> list[LedgerEntry]:
        entries = [
            e for e in self.t.ledger.values() if e.user_id == user_id and (before is None or e.entry_id < before)
        ]
        return sorted(entries, key=lambda e: e.entry_id, reverse=True)[:limit]

"""Credits: the tenant's prepaid balance, holds for AI turns under way, and the ledger of changes."""

from __future__ import annotations

import enum
from datetime import datetime

from attrs import frozen

from domain.errors import ValidationFailed

#: Largest single top-up accepted, to catch typos (a missing decimal point) before they become money.
MAX_TOP_UP = 10_000_000


class LedgerKind(enum.StrEnum):
    TOP_UP = "top_up"
    CHARGE = "charge"


@frozen
class Credits:
    """`balance` is what the tenant owns; `reserved` is held for AI turns under way."""

    user_id: str
    balance: int
    reserved: int
    updated_at: datetime

    @property
    def available(self) -> int:
        return self.balance - self.reserved

    def can_reserve(self, amount: int) -> bool:
        return amount <= self.available


@frozen
class LedgerEntry:
    entry_id: int
    user_id: str
    kind: LedgerKind
    amount: int  # signed: + top-up, - charge
    balance_after: int
    reason: str | None
    turn_id: int | None
    created_at: datetime


def check_top_up(amount: object) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValidationFailed("amount must be a positive whole number of credits", field="amount")
    if amount > MAX_TOP_UP:
        raise ValidationFailed(f"amount must be at most {MAX_TOP_UP}", field="amount")
    return amount

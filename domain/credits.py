"""Credits: the tenant's prepaid balance, holds for AI turns under way, and the ledger of changes.

Every change is a `CreditMovement` decided here: a hold before an AI call, its settlement (the
charge) when the AI answered, its release when it did not, a top-up. Storage applies a movement
as it is, atomically; the rule that neither the balance nor what is held ever goes negative is
checked here first and kept by the database's constraint as the last guard.
"""

from __future__ import annotations

import enum
from datetime import datetime

from attrs import evolve, frozen

from domain.errors import InsufficientCredits, InvalidTransition, ValidationFailed

#: Largest single top-up accepted, to catch typos (a missing decimal point) before they become money.
MAX_TOP_UP = 10_000_000

#: The reason written in the ledger for the charge of an AI turn.
AI_TURN = "ai_turn"
#: The reason written in the ledger for the charge of a lead extraction (CREDITS_PER_EXTRACTION).
LEAD_EXTRACTION = "lead_extraction"


class LedgerKind(enum.StrEnum):
    TOP_UP = "top_up"
    CHARGE = "charge"


@frozen
class CreditMovement:
    """A change of one tenant's credits: `balance` and `reserved` are what is added (negative: taken).

    A movement that changes the balance is written to the ledger as `ledger`; holds and releases
    only move credits between available and reserved, and are not.
    """

    user_id: str
    balance: int
    reserved: int
    ledger: LedgerKind | None = None
    reason: str | None = None
    turn_id: int | None = None
    extraction_id: int | None = None

    @classmethod
    def hold(cls, user_id: str, amount: int) -> CreditMovement:
        return cls(user_id, balance=0, reserved=amount)

    @classmethod
    def release(cls, user_id: str, amount: int) -> CreditMovement:
        return cls(user_id, balance=0, reserved=-amount)

    @classmethod
    def settle(cls, user_id: str, amount: int, turn_id: int) -> CreditMovement:
        """A hold becomes a charge: the credits leave the balance and the hold at once."""
        return cls(
            user_id, balance=-amount, reserved=-amount, ledger=LedgerKind.CHARGE, reason=AI_TURN, turn_id=turn_id
        )

    @classmethod
    def charge_extraction(cls, user_id: str, amount: int, extraction_id: int) -> CreditMovement:
        """A lead extraction's price, taken from the balance once it is stored (no hold: it is not a reply)."""
        return cls(
            user_id,
            balance=-amount,
            reserved=0,
            ledger=LedgerKind.CHARGE,
            reason=LEAD_EXTRACTION,
            extraction_id=extraction_id,
        )

    @classmethod
    def top_up(cls, user_id: str, amount: int, reason: str | None) -> CreditMovement:
        return cls(user_id, balance=check_top_up(amount), reserved=0, ledger=LedgerKind.TOP_UP, reason=reason)


@frozen
class Credits:
    """`balance` is what the tenant owns; `reserved` is held for AI turns under way."""

    user_id: str
    balance: int
    reserved: int
    updated_at: datetime

    @classmethod
    def none(cls, user_id: str, at: datetime) -> Credits:
        """The account of a tenant that was never credited."""
        return cls(user_id=user_id, balance=0, reserved=0, updated_at=at)

    @property
    def available(self) -> int:
        return self.balance - self.reserved

    def hold(self, amount: int) -> CreditMovement:
        """Hold `amount` for an AI turn. No credit, no AI call."""
        if amount > self.available:
            raise InsufficientCredits(f"{amount} credit(s) needed, {self.available} available")
        return CreditMovement.hold(self.user_id, amount)

    def can_pay(self, amount: int) -> bool:
        """Whether `amount` can be taken now without touching what is held for replies."""
        return amount <= self.available

    def apply(self, movement: CreditMovement, now: datetime) -> Credits:
        """The account after `movement`; a movement that would make either figure negative is refused."""
        if movement.user_id != self.user_id:
            raise ValueError(f"a movement of {movement.user_id} applied to the credits of {self.user_id}")
        balance, reserved = self.balance + movement.balance, self.reserved + movement.reserved
        if reserved < 0:
            raise InvalidTransition(f"cannot give back {-movement.reserved} credit(s): {self.reserved} held")
        if balance < reserved:
            raise InsufficientCredits(f"the balance {balance} would not cover the {reserved} credit(s) held")
        return evolve(self, balance=balance, reserved=reserved, updated_at=now)


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
    extraction_id: int | None = None


def check_top_up(amount: object) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValidationFailed("amount must be a positive whole number of credits", field="amount")
    if amount > MAX_TOP_UP:
        raise ValidationFailed(f"amount must be at most {MAX_TOP_UP}", field="amount")
    return amount

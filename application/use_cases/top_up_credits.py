"""Credits are added to a tenant's balance (by the operator), each change kept in the ledger."""

from __future__ import annotations

from collections.abc import Callable

from attrs import frozen

from application.ports.repositories import UnitOfWork
from application.ports.services import BalanceCache, Clock
from domain.credits import CreditMovement, Credits, LedgerEntry
from domain.errors import NotFound


@frozen
class TopUpCommand:
    user_id: str
    amount: int
    reason: str | None = None
    idempotency_key: str | None = None


@frozen
class TopUpResult:
    entry: LedgerEntry
    credits: Credits


class TopUpCredits:
    def __init__(self, uow: Callable[[], UnitOfWork], balances: BalanceCache, clock: Clock) -> None:
        self._uow = uow
        self._balances = balances
        self._clock = clock

    def __call__(self, command: TopUpCommand) -> TopUpResult:
        movement = CreditMovement.top_up(command.user_id, command.amount, command.reason)
        with self._uow() as uow:
            if uow.users.get(command.user_id) is None:
                raise NotFound(f"user {command.user_id} not found")
            entry = uow.credits.record(movement, self._clock.now(), idempotency_key=command.idempotency_key)
            credits = uow.credits.get(command.user_id)
            uow.commit()
        self._balances.invalidate(command.user_id)
        return TopUpResult(entry=entry, credits=credits)

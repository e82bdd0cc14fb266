"""The channel reports what became of one of our replies (sent, delivered, read, failed)."""

from __future__ import annotations

from collections.abc import Callable

from application.ports.repositories import UnitOfWork
from application.ports.services import Clock
from domain.messages import DeliveryReport


class ApplyDeliveryReport:
    def __init__(self, uow: Callable[[], UnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def __call__(self, report: DeliveryReport) -> bool:
        """True when the report named one of our outbound messages."""
        with self._uow() as uow:
            applied = uow.messages.apply_delivery_report(report, self._clock.now())
            uow.commit()
        return applied

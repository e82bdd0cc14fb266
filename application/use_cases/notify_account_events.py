"""Tell the business about its account: credits low or exhausted, a channel failing, a customer waiting
for a person. Run by the sweep; each fact is announced once (`domain.notifications`, dedup keys)."""

from __future__ import annotations

from collections.abc import Callable

from application.notifying import Notifier, ScheduleWebhookDeliveries
from application.ports.repositories import UnitOfWork
from application.ports.services import Clock
from domain.notifications import (
    FAILURE_WINDOW,
    NewNotification,
    about_balance,
    about_channel,
    about_waiting,
)


class NotifyAccountEvents:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        notifier: Notifier,
        deliveries: ScheduleWebhookDeliveries,
        clock: Clock,
    ) -> None:
        self._uow = uow
        self._notifier = notifier
        self._deliveries = deliveries
        self._clock = clock

    def __call__(self) -> int:
        """Returns how many notifications are new."""
        now = self._clock.now()
        with self._uow() as uow:
            news: list[NewNotification] = []
            for balance in uow.notifications.balances_to_check():
                news.extend(about_balance(balance, now))
            for failures in uow.notifications.send_failures(since=now - FAILURE_WINDOW):
                news.extend(about_channel(failures))
            news.extend(about_waiting(waiting) for waiting in uow.notifications.waiting_for_human())
            told = self._notifier.notify(uow, news, now)
            uow.commit()
        # Deliveries of earlier notifications whose retry is due go out with them.
        self._deliveries()
        return told

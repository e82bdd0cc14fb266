"""Telling the business: store what the domain decided to notify, and queue its webhook delivery."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from application.ports.leads import BackgroundJobs
from application.ports.repositories import UnitOfWork
from application.ports.services import Clock, IdGenerator, QueueUnavailable
from domain.notifications import NewNotification
from domain.webhooks import CLAIM_FOR, WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

#: Deliveries handed to the queue per sweep; the rest wait for the next one.
_SCHEDULE_BATCH = 500


class Notifier:
    def __init__(self, ids: IdGenerator) -> None:
        self._ids = ids

    def notify(self, uow: UnitOfWork, news: Sequence[NewNotification], now: datetime) -> int:
        """Store each notification not told before (its dedup key), in the caller's unit of work, with a
        delivery to the business's webhook when it has one. Returns how many are new."""
        told = 0
        endpoints: dict[str, WebhookEndpoint | None] = {}
        for new in news:
            stored = uow.notifications.add(new)
            if stored is None:
                continue
            told += 1
            if new.user_id not in endpoints:
                endpoints[new.user_id] = uow.webhooks.endpoint(new.user_id)
            endpoint = endpoints[new.user_id]
            if endpoint is not None:
                event_id = self._ids.new_id("evt")
                uow.webhooks.add_delivery(
                    WebhookDelivery.first(new.user_id, stored.notification_id, event_id, endpoint.url, now)
                )
            log.info(
                "notification",
                extra={"user_id": new.user_id, "kind": str(new.kind), "webhook": endpoint is not None},
            )
        return told


class ScheduleWebhookDeliveries:
    """Hand the deliveries whose next attempt is due to the background queue, each to one worker."""

    def __init__(self, uow: Callable[[], UnitOfWork], jobs: BackgroundJobs, clock: Clock) -> None:
        self._uow = uow
        self._jobs = jobs
        self._clock = clock

    def __call__(self) -> int:
        now = self._clock.now()
        with self._uow() as uow:
            due = uow.webhooks.claim_due(now, now + CLAIM_FOR, _SCHEDULE_BATCH)
            uow.commit()
        for queued, delivery_id in enumerate(due):
            try:
                self._jobs.enqueue_webhook(delivery_id)
            except QueueUnavailable:
                # Their claims run out and a later sweep queues them again.
                log.warning("webhook_deliveries_not_queued", extra={"count": len(due) - queued})
                return queued
        return len(due)

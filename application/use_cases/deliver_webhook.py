"""POST one notification to the business's webhook, signed, and log the attempt.

A background job per attempt. The delivery is read and saved in two short transactions around the POST
(no database connection is held while a slow receiver answers); an attempt whose delivery moved on
meanwhile (another worker ran the same job) is not saved, and the receiver drops its repeat by `event_id`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from attrs import frozen

from application.ports.leads import WebhookSender
from application.ports.repositories import UnitOfWork
from application.ports.services import Clock
from domain.webhooks import FIRST_RETRY_AFTER, WebhookAttempt, WebhookDelivery

log = logging.getLogger(__name__)


@frozen
class DeliverWebhookCommand:
    delivery_id: int


class DeliverWebhook:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        sender: WebhookSender,
        clock: Clock,
        *,
        first_retry: timedelta = FIRST_RETRY_AFTER,
    ) -> None:
        self._uow = uow
        self._sender = sender
        self._clock = clock
        self._first_retry = first_retry

    def __call__(self, command: DeliverWebhookCommand) -> WebhookDelivery | None:
        """The delivery after this attempt; None when there was nothing to do."""
        with self._uow() as uow:
            delivery = uow.webhooks.delivery(command.delivery_id)
            if delivery is None or delivery.finished:
                return None
            endpoint = uow.webhooks.endpoint(delivery.user_id)
            notification = uow.notifications.get(delivery.user_id, delivery.notification_id)
            if endpoint is None or notification is None:
                why = "the webhook was removed" if endpoint is None else "the notification was deleted"
                attempt = WebhookAttempt(delivery.attempts + 1, self._clock.now(), None, why, 0)
                given_up = delivery.abandoned(attempt)
                uow.webhooks.save_attempt(given_up, attempt)
                uow.commit()
                return given_up
        sent_at = self._clock.now()
        body = delivery.body(notification.as_event(), str(notification.kind), sent_at)
        # The URL of now: a business that moved its webhook gets the retries at the new one.
        response = self._sender.post(endpoint.url, body, delivery.headers(endpoint.secret, body, sent_at))
        attempt = WebhookAttempt(delivery.attempts + 1, sent_at, response.status, response.error, response.duration_ms)
        with self._uow() as uow:
            current = uow.webhooks.delivery(command.delivery_id)
            if current is None or current.finished or current.attempts != delivery.attempts:
                return None  # another worker saved an attempt meanwhile
            after = current.answered(attempt, response.accepted, first_retry=self._first_retry)
            uow.webhooks.save_attempt(after, attempt)
            uow.commit()
        log.info(
            "webhook_attempt",
            extra={
                "delivery_id": command.delivery_id,
                "event_id": delivery.event_id,
                "status_code": response.status,
                "outcome": str(after.status),
                "error": response.error,
            },
        )
        return after

"""Outgoing webhooks in memory: the users' endpoints, the deliveries, their holds and their attempts."""

from __future__ import annotations

from datetime import datetime

from attrs import evolve

from adapters.memory.repository import InMemoryRepository
from application.ports.lead_storage import DeliveryPage, DeliveryQuery, LoggedDelivery
from domain.webhooks import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint


class InMemoryWebhooksRepository(InMemoryRepository):
    def endpoint(self, user_id: str) -> WebhookEndpoint | None:
        return self.t.webhook_endpoints.get(user_id)

    def save_endpoint(self, endpoint: WebhookEndpoint) -> None:
        self.t.webhook_endpoints[endpoint.user_id] = endpoint

    def delete_endpoint(self, user_id: str) -> bool:
        return self.t.webhook_endpoints.pop(user_id, None) is not None

    def add_delivery(self, delivery: WebhookDelivery) -> WebhookDelivery:
        stored = evolve(delivery, delivery_id=self.t.next_id("webhook_deliveries"))
        self.t.webhook_deliveries[_id(stored)] = stored
        return stored

    def claim_due(self, now: datetime, claim_until: datetime, limit: int) -> list[int]:
        due = sorted(
            (
                d
                for d in self.t.webhook_deliveries.values()
                if d.status is DeliveryStatus.PENDING
                and d.next_attempt_at is not None
                and d.next_attempt_at <= now
                and self.t.webhook_claims.get(_id(d), now) <= now
            ),
            key=lambda d: (d.next_attempt_at, _id(d)),
        )[:limit]
        for delivery in due:
            self.t.webhook_claims[_id(delivery)] = claim_until
        return [_id(d) for d in due]

    def delivery(self, delivery_id: int) -> WebhookDelivery | None:
        return self.t.webhook_deliveries.get(delivery_id)

    def save_attempt(self, delivery: WebhookDelivery, attempt: WebhookAttempt) -> None:
        delivery_id = _id(delivery)
        self.t.webhook_deliveries[delivery_id] = delivery
        self.t.webhook_claims.pop(delivery_id, None)
        self.t.webhook_attempts[delivery_id] = (*self.t.webhook_attempts.get(delivery_id, ()), attempt)

    def list(self, user_id: str, query: DeliveryQuery) -> DeliveryPage:
        found = sorted(
            (
                d
                for d in self.t.webhook_deliveries.values()
                if d.user_id == user_id
                and (query.status is None or d.status is query.status)
                and (query.notification_id is None or d.notification_id == query.notification_id)
                and (query.cursor is None or _id(d) < query.cursor)
            ),
            key=_id,
            reverse=True,
        )
        items = found[: query.limit]
        return DeliveryPage(
            items=[
                LoggedDelivery(d, tuple(sorted(self.t.webhook_attempts.get(_id(d), ()), key=lambda a: a.attempt_no)))
                for d in items
            ],
            next_cursor=_id(items[-1]) if len(found) > query.limit and items else None,
        )


def _id(delivery: WebhookDelivery) -> int:
    assert delivery.delivery_id is not None, "a stored delivery has its id"
    return delivery.delivery_id

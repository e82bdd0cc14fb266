"""Something of a webhook delivery cannot be stored: keep it, with why, for an operator to look at."""

from __future__ import annotations

import logging

from attrs import frozen

from application.ports.pipeline import RejectedDeliveries
from application.ports.services import Clock
from domain.rejections import RejectedDelivery

log = logging.getLogger(__name__)


@frozen
class Rejection:
    """`delivery` is the request body as it came; the ids say which message of it, when that is known."""

    reason: str
    delivery: bytes
    phone_number_id: str | None = None
    platform_message_id: str | None = None
    correlation_id: str | None = None


class RejectDelivery:
    def __init__(self, rejected: RejectedDeliveries, clock: Clock) -> None:
        self._rejected = rejected
        self._clock = clock

    def __call__(self, rejection: Rejection) -> RejectedDelivery:
        """Raises StorageUnavailable when not even this can be stored."""
        rejected = RejectedDelivery.of(
            rejection.reason,
            rejection.delivery,
            self._clock.now(),
            phone_number_id=rejection.phone_number_id,
            platform_message_id=rejection.platform_message_id,
            correlation_id=rejection.correlation_id,
        )
        log.warning(
            "delivery_rejected",
            extra={
                "reason": rejected.reason,
                "phone_number_id": rejected.phone_number_id,
                "platform_message_id": rejected.platform_message_id,
                "body_size": rejected.body_size,
            },
        )
        self._rejected.record(rejected)
        return rejected

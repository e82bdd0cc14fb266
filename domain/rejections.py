"""What the service could not take from a delivery, kept for an operator to look at."""

from __future__ import annotations

from datetime import datetime

from attrs import frozen

from domain import limits


@frozen
class RejectedDelivery:
    """A message (or a whole delivery) that could not be stored, with why, where it was going if that is
    known, and the delivery's bytes as they came: invalid UTF-8 and NUL included, nothing decoded.

    Bounded like everything stored: the reason and ids are cut to their bounds, and of the body only
    the first `limits.REJECTED_DELIVERY_BYTES` are kept; `body_size` says how long it was.
    """

    reason: str
    received_at: datetime
    body: bytes
    body_size: int
    phone_number_id: str | None
    platform_message_id: str | None
    correlation_id: str | None

    @classmethod
    def of(
        cls,
        reason: str,
        delivery: bytes,
        received_at: datetime,
        *,
        phone_number_id: str | None = None,
        platform_message_id: str | None = None,
        correlation_id: str | None = None,
    ) -> RejectedDelivery:
        return cls(
            reason=_bounded(reason, limits.REJECTION_REASON),
            received_at=received_at,
            body=delivery[: limits.REJECTED_DELIVERY_BYTES],
            body_size=len(delivery),
            phone_number_id=_optional(phone_number_id, limits.CHANNEL_ID),
            platform_message_id=_optional(platform_message_id, limits.PLATFORM_MESSAGE_ID),
            correlation_id=_optional(correlation_id, limits.CORRELATION_ID),
        )


def _bounded(text: str, limit: int) -> str:
    return limits.storable(text[:limit])


def _optional(text: str | None, limit: int) -> str | None:
    return None if text is None else _bounded(text, limit)

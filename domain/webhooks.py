"""Outgoing webhooks: where a business wants its notifications POSTed, how each POST is signed, and how
long a delivery is tried before it is given up.

A receiver checks three things (documentation/notifications/webhooks.md): the signature, an HMAC-SHA256
of the raw body under the business's secret; `sent_at`, inside the signed body, not older than a few
minutes (a replayed POST is stale); and `event_id`, the same on every attempt of one notification, so
a retry that arrives after a success is recognised and dropped.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from attrs import evolve, field, frozen

from domain.errors import InvalidTransition, ValidationFailed

SIGNATURE_HEADER = "X-Mcagent-Signature"
EVENT_ID_HEADER = "X-Mcagent-Event-Id"
TIMESTAMP_HEADER = "X-Mcagent-Timestamp"

#: The secret's visible prefix, so that one found in a log or a repository is recognised for what it is.
SECRET_PREFIX = "whsec_"
URL_MAX = 2_048

#: Deliveries are tried for this long after the notification, then given up (and shown so).
GIVE_UP_AFTER = timedelta(hours=24)
FIRST_RETRY_AFTER = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=1)
#: A delivery taken by a worker is not taken again for this long, unless its outcome was saved before.
CLAIM_FOR = timedelta(minutes=2)
#: What of a receiver's error is kept in the delivery log.
ERROR_MAX = 500


def check_url(url: object) -> str:
    """An absolute http(s) URL without credentials in it. Which hosts may be called is the sender's
    business (private addresses are refused unless the operator allows them)."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationFailed("url must be an absolute http(s) URL", field="url")
    url = url.strip()
    if len(url) > URL_MAX:
        raise ValidationFailed(f"url must be at most {URL_MAX} characters", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # an unclosed "[", a host in brackets that is no IP address, a port like ":99999"
        raise ValidationFailed("url must be an absolute http(s) URL", field="url") from None
    # urlsplit drops tabs and line breaks and keeps spaces; no request can be made to such a URL.
    unusable = port == 0 or any(character.isspace() or not character.isprintable() for character in url)
    if unusable or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed("url must be an absolute http(s) URL", field="url")
    if parts.username or parts.password:
        raise ValidationFailed("url must not carry a user name or password", field="url")
    if parts.fragment:
        raise ValidationFailed("url must not have a #fragment", field="url")
    return url


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: `sha256=` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(secret: str, body: bytes, header: str | None) -> bool:
    """What a receiver checks (constant-time), written here once so the example receiver and the
    tests check exactly what the service signs."""
    # As bytes: compare_digest refuses str with non-ASCII characters, which a forged header may carry.
    return header is not None and hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


@frozen
class WebhookEndpoint:
    """A business's webhook: its URL and the secret its POSTs are signed with (shown once)."""

    user_id: str
    url: str
    secret: str = field(repr=False)
    created_at: datetime
    secret_rotated_at: datetime

    @classmethod
    def configure(cls, user_id: str, url: object, secret: str, now: datetime) -> WebhookEndpoint:
        return cls(user_id, check_url(url), secret, now, now)

    def move_to(self, url: object) -> WebhookEndpoint:
        """Another URL; the secret stays (the receiver keeps verifying with what it has)."""
        return evolve(self, url=check_url(url))

    def rotate(self, secret: str, now: datetime) -> WebhookEndpoint:
        """A new secret, used from the next POST on; the old one stops verifying at once."""
        return evolve(self, secret=secret, secret_rotated_at=now)


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    GIVEN_UP = "given_up"


@frozen
class WebhookAttempt:
    """One POST of a delivery, as the delivery log shows it."""

    attempt_no: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


@frozen
class WebhookDelivery:
    """One notification on its way to the business's URL. `event_id` is the same on every attempt."""

    delivery_id: int | None
    user_id: str
    notification_id: int
    event_id: str
    url: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None

    @classmethod
    def first(cls, user_id: str, notification_id: int, event_id: str, url: str, now: datetime) -> WebhookDelivery:
        return cls(None, user_id, notification_id, event_id, url, DeliveryStatus.PENDING, 0, now, now)

    @property
    def finished(self) -> bool:
        return self.status is not DeliveryStatus.PENDING

    def body(self, notification: Mapping[str, object], kind: str, sent_at: datetime) -> bytes:
        """The bytes of the next POST: the event, when it was sent, which attempt. Compact JSON, keys in
        a fixed order: the signature is over exactly these bytes."""
        envelope = {
            "event_id": self.event_id,
            "type": kind,
            "sent_at": int(sent_at.timestamp()),
            "attempt": self.attempts + 1,
            "notification": dict(notification),
        }
        return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False, default=str).encode()

    def headers(self, secret: str, body: bytes, sent_at: datetime) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, body),
            EVENT_ID_HEADER: self.event_id,
            TIMESTAMP_HEADER: str(int(sent_at.timestamp())),
        }

    def answered(
        self, attempt: WebhookAttempt, accepted: bool, *, first_retry: timedelta = FIRST_RETRY_AFTER
    ) -> WebhookDelivery:
        """The delivery after one POST: delivered on a 2xx; otherwise tried again later, with the wait
        doubling from `first_retry` up to LONGEST_WAIT, and given up once the next try would come
        GIVE_UP_AFTER the notification or later."""
        if self.finished:
            raise InvalidTransition(f"delivery {self.delivery_id} is {self.status} already")
        tried = evolve(
            self,
            attempts=self.attempts + 1,
            last_status_code=attempt.status_code,
            last_error=(attempt.error or "")[:ERROR_MAX] or None,
        )
        if accepted:
            return evolve(tried, status=DeliveryStatus.DELIVERED, delivered_at=attempt.at, next_attempt_at=None)
        # The exponent is bounded: past 2**20 any base is over LONGEST_WAIT, and timedelta would overflow.
        wait = min(first_retry * 2 ** min(tried.attempts - 1, 20), LONGEST_WAIT)
        next_at = attempt.at + wait
        if next_at >= self.created_at + GIVE_UP_AFTER:
            return evolve(tried, status=DeliveryStatus.GIVEN_UP, next_attempt_at=None)
        return evolve(tried, next_attempt_at=next_at)

    def abandoned(self, attempt: WebhookAttempt) -> WebhookDelivery:
        """Given up without a POST: the business removed its webhook, or the notification is gone."""
        if self.finished:
            raise InvalidTransition(f"delivery {self.delivery_id} is {self.status} already")
        return evolve(
            self,
            status=DeliveryStatus.GIVEN_UP,
            attempts=self.attempts + 1,
            next_attempt_at=None,
            last_status_code=None,
            last_error=(attempt.error or "")[:ERROR_MAX] or None,
        )

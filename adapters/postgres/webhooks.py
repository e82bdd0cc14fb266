"""Outgoing webhooks in PostgreSQL: the users' endpoints, the deliveries, and each delivery's attempts.

An endpoint's secret is stored encrypted with the cipher of the channels' access tokens (adapters/crypto.py):
`_endpoint` is the one place that turns a row back into a WebhookEndpoint, with its secret in clear.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any, LiteralString

from attrs import evolve
from psycopg import sql

from adapters.crypto import FernetTokenCipher, TokenUndecryptable
from adapters.postgres._sql import ConnectionSource, PostgresRepository
from adapters.postgres.rows import entity
from application.ports.lead_storage import DeliveryPage, DeliveryQuery, LoggedDelivery
from domain.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint

_ENDPOINT_COLUMNS = "user_id, url, secret, created_at, secret_rotated_at"
DELIVERY_COLUMNS = (
    "delivery_id, user_id, notification_id, event_id, url, status, attempts, next_attempt_at, created_at, "
    "delivered_at, last_status_code, last_error"
)
_ATTEMPT_COLUMNS = "attempt_no, at, status_code, error, duration_ms"

_SAVE_ENDPOINT: LiteralString = f"""
INSERT INTO webhook_endpoints ({_ENDPOINT_COLUMNS}) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (user_id) DO UPDATE
SET url = excluded.url, secret = excluded.secret, created_at = excluded.created_at,
    secret_rotated_at = excluded.secret_rotated_at
"""

_ADD_DELIVERY: LiteralString = """
INSERT INTO webhook_deliveries (
    user_id, notification_id, event_id, url, status, attempts, next_attempt_at, created_at, delivered_at,
    last_status_code, last_error)
VALUES (%(user_id)s, %(notification_id)s, %(event_id)s, %(url)s, %(status)s, %(attempts)s, %(next_attempt_at)s,
        %(created_at)s, %(delivered_at)s, %(last_status_code)s, %(last_error)s)
RETURNING delivery_id
"""

# The pending deliveries due by now, oldest due first (webhook_deliveries_due_idx), that no worker holds.
# SKIP LOCKED: one another sweeper is taking is left to it; one it took meanwhile is re-checked once its
# lock is let go, and its hold excludes it.
_CLAIM_DUE: LiteralString = """
WITH due AS (
    SELECT delivery_id FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= %(now)s
      AND (claimed_until IS NULL OR claimed_until <= %(now)s)
    ORDER BY next_attempt_at, delivery_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE webhook_deliveries d SET claimed_until = %(claim_until)s
    FROM due WHERE d.delivery_id = due.delivery_id
    RETURNING d.delivery_id, d.next_attempt_at
)
SELECT delivery_id FROM claimed ORDER BY next_attempt_at, delivery_id
"""

# The delivery as the domain left it after the attempt, its hold let go, and the attempt in its log: at once.
_SAVE_ATTEMPT: LiteralString = """
WITH saved AS (
    UPDATE webhook_deliveries
    SET status = %(status)s, attempts = %(attempts)s, next_attempt_at = %(next_attempt_at)s,
        delivered_at = %(delivered_at)s, last_status_code = %(last_status_code)s, last_error = %(last_error)s,
        claimed_until = NULL
    WHERE delivery_id = %(delivery_id)s
    RETURNING delivery_id
)
INSERT INTO webhook_attempts (delivery_id, attempt_no, at, status_code, error, duration_ms)
SELECT delivery_id, %(attempt_no)s, %(at)s, %(status_code)s, %(error)s, %(duration_ms)s FROM saved
"""

_ATTEMPTS: LiteralString = f"""
SELECT delivery_id, {_ATTEMPT_COLUMNS} FROM webhook_attempts WHERE delivery_id = ANY(%s)
ORDER BY delivery_id, attempt_no
"""


class PostgresWebhooksRepository(PostgresRepository):
    def __init__(self, connection: ConnectionSource, *, cipher: FernetTokenCipher) -> None:
        super().__init__(connection)
        self._cipher = cipher

    def _endpoint(self, row: Mapping[str, Any]) -> WebhookEndpoint:
        stored = entity(row, WebhookEndpoint)
        try:
            return evolve(stored, secret=self._cipher.decrypt(stored.secret))
        except TokenUndecryptable as error:
            raise TokenUndecryptable(f"the webhook secret of user {stored.user_id}: {error}") from None

    def endpoint(self, user_id: str) -> WebhookEndpoint | None:
        row = (
            self._cursor()
            .execute(f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE user_id = %s", (user_id,))
            .fetchone()
        )
        return None if row is None else self._endpoint(row)

    def save_endpoint(self, endpoint: WebhookEndpoint) -> None:
        self._cursor().execute(
            _SAVE_ENDPOINT,
            (
                endpoint.user_id,
                endpoint.url,
                self._cipher.encrypt(endpoint.secret),
                endpoint.created_at,
                endpoint.secret_rotated_at,
            ),
        )

    def delete_endpoint(self, user_id: str) -> bool:
        deleted = self._cursor().execute("DELETE FROM webhook_endpoints WHERE user_id = %s", (user_id,))
        return deleted.rowcount > 0

    def add_delivery(self, delivery: WebhookDelivery) -> WebhookDelivery:
        row = (
            self._cursor()
            .execute(
                _ADD_DELIVERY,
                {
                    "user_id": delivery.user_id,
                    "notification_id": delivery.notification_id,
                    "event_id": delivery.event_id,
                    "url": delivery.url,
                    "status": delivery.status.value,
                    "attempts": delivery.attempts,
                    "next_attempt_at": delivery.next_attempt_at,
                    "created_at": delivery.created_at,
                    "delivered_at": delivery.delivered_at,
                    "last_status_code": delivery.last_status_code,
                    "last_error": delivery.last_error,
                },
            )
            .fetchone()
        )
        assert row is not None
        return evolve(delivery, delivery_id=row["delivery_id"])

    def claim_due(self, now: datetime, claim_until: datetime, limit: int) -> list[int]:
        rows = self._cursor().execute(_CLAIM_DUE, {"now": now, "claim_until": claim_until, "limit": limit})
        return [row["delivery_id"] for row in rows]

    def delivery(self, delivery_id: int) -> WebhookDelivery | None:
        row = (
            self._cursor()
            .execute(
                f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE delivery_id = %s FOR UPDATE", (delivery_id,)
            )
            .fetchone()
        )
        return None if row is None else entity(row, WebhookDelivery)

    def save_attempt(self, delivery: WebhookDelivery, attempt: WebhookAttempt) -> None:
        self._cursor().execute(
            _SAVE_ATTEMPT,
            {
                "delivery_id": delivery.delivery_id,
                "status": delivery.status.value,
                "attempts": delivery.attempts,
                "next_attempt_at": delivery.next_attempt_at,
                "delivered_at": delivery.delivered_at,
                "last_status_code": delivery.last_status_code,
                "last_error": delivery.last_error,
                "attempt_no": attempt.attempt_no,
                "at": attempt.at,
                "status_code": attempt.status_code,
                "error": attempt.error,
                "duration_ms": attempt.duration_ms,
            },
        )

    def list(self, user_id: str, query: DeliveryQuery) -> DeliveryPage:
        """One query for the page (webhook_deliveries_user_idx), one for the page's attempts."""
        conditions = [sql.SQL("user_id = %(user_id)s")]
        if query.status is not None:
            conditions.append(sql.SQL("status = %(status)s"))
        if query.notification_id is not None:
            conditions.append(sql.SQL("notification_id = %(notification_id)s"))
        if query.cursor is not None:
            conditions.append(sql.SQL("delivery_id < %(cursor)s"))
        statement = sql.SQL(
            "SELECT {columns} FROM webhook_deliveries WHERE {conditions} ORDER BY delivery_id DESC LIMIT %(limit)s"
        ).format(columns=sql.SQL(DELIVERY_COLUMNS), conditions=sql.SQL(" AND ").join(conditions))
        params = {
            "user_id": user_id,
            "status": None if query.status is None else query.status.value,
            "notification_id": query.notification_id,
            "cursor": query.cursor,
            "limit": query.limit + 1,
        }
        cursor = self._cursor()
        rows = cursor.execute(statement, params, prepare=False).fetchall()
        deliveries = [entity(row, WebhookDelivery) for row in rows[: query.limit]]
        attempts: dict[int, list[WebhookAttempt]] = defaultdict(list)
        if deliveries:
            for row in cursor.execute(_ATTEMPTS, ([d.delivery_id for d in deliveries],)):
                attempts[row["delivery_id"]].append(entity(row, WebhookAttempt))
        return DeliveryPage(
            items=[LoggedDelivery(d, tuple(attempts.get(d.delivery_id or 0, ()))) for d in deliveries],
            next_cursor=deliveries[-1].delivery_id if len(rows) > query.limit else None,
        )
